"""Memory is bounded by the chunk's size on hostile chunks: a 2x2 float32 array (16 bytes a chunk)
whose one stored chunk decodes to hundreds of MiB, with every bytes codec, is refused with a typed
error by a reader whose peak RSS barely moves. Each bomb is read in a fresh process (peak RSS only
grows); the positive control decodes the same bytes with the codec itself, in another process, and
sees the bomb go off, so the measurement would see it if we fell for it."""

from __future__ import annotations

import bz2
import json
import lzma
import struct
import zlib
from pathlib import Path
from typing import Any

import numcodecs
import numpy as np
import pytest

from tests.fixtures.peak import peak_growth

MiB = 1 << 20
#: The most a reader's peak RSS may grow while it refuses a bomb.
BOUND = 32 * MiB
#: What a bomb makes the codec itself allocate, at least (the controls).
BANG = 256 * MiB
V3 = {"zarr_format": 3, "node_type": "array", "shape": [2, 2], "data_type": "float32", "fill_value": 0.0,
      "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [2, 2]}},
      "chunk_key_encoding": {"name": "default"}, "attributes": {}}  # fmt: skip
V2 = {"zarr_format": 2, "shape": [2, 2], "chunks": [2, 2], "dtype": "<f4", "fill_value": 0.0, "order": "C",
      "filters": None}  # fmt: skip
LE = {"name": "bytes", "configuration": {"endian": "little"}}


def zstd_rle(blocks: int, stated: int | None) -> bytes:
    """A zstd frame of ``blocks`` RLE blocks of 128 KiB each (4 bytes apiece), stating its size or not."""
    head = struct.pack("<I", 0xFD2FB528)
    head += bytes([0xE0]) + struct.pack("<Q", stated) if stated is not None else bytes([0x00, 0x38])
    body = b"".join(((i == blocks - 1) | (1 << 1) | (128 * 1024 << 3)).to_bytes(3, "little") + b"\x07"
                    for i in range(blocks))  # fmt: skip
    return head + body


def streams(compress: Any, decoded: int, copies: int) -> bytes:
    """``copies`` streams one after another, each of ``decoded`` zero bytes: a reader decodes them all."""
    one = compress(bytes(decoded))
    return one * copies


def zlib_of(zeros: int, wbits: int) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, wbits)
    block = bytes(MiB)
    return b"".join(packer.compress(block) for _ in range(zeros // MiB)) + packer.flush()


def bombs() -> dict[str, tuple[dict[str, Any], dict[str, Any], Any]]:
    """kind -> (array metadata, the codec's numcodecs config, a function making the chunk's bytes)."""
    big = np.zeros(512 * MiB, dtype=np.uint8)
    return {
        "zstd, no stated size": ({**V3, "codecs": [LE, {"name": "zstd", "configuration": {"level": 1}}]},
                                 {"id": "zstd"}, lambda: zstd_rle(4096, None)),
        "zstd, stated size": ({**V3, "codecs": [LE, {"name": "zstd", "configuration": {"level": 1}}]},
                              {"id": "zstd"}, lambda: zstd_rle(4096, 512 * MiB)),
        "gzip": ({**V3, "codecs": [LE, {"name": "gzip", "configuration": {"level": 1}}]},
                 {"id": "gzip"}, lambda: zlib_of(64 * MiB, 31) * 8),
        "blosc": ({**V3, "codecs": [LE, {"name": "blosc", "configuration": {"cname": "lz4"}}]},
                  {"id": "blosc"}, lambda: bytes(numcodecs.Blosc("lz4").encode(big))),
        "zlib": ({**V2, "compressor": {"id": "zlib", "level": 1}}, {"id": "zlib"}, lambda: zlib_of(512 * MiB, 15)),
        "bz2": ({**V2, "compressor": {"id": "bz2", "level": 1}}, {"id": "bz2"},
                lambda: streams(bz2.compress, 32 * MiB, 16)),
        "lzma": ({**V2, "compressor": {"id": "lzma"}}, {"id": "lzma"}, lambda: streams(lzma.compress, 32 * MiB, 16)),
        "lz4": ({**V2, "compressor": {"id": "lz4"}}, {"id": "lz4"}, lambda: bytes(numcodecs.LZ4().encode(big))),
    }  # fmt: skip


KINDS = list(bombs())

READ = (
    """
import zarrcore
from zarrcore.errors import ChunkError
a = zarrcore.open_array(sys.argv[1])
""",
    """
try:
    a[(slice(0, 2),) * a.ndim]
except ChunkError as exc:
    result = f"{type(exc.cause).__name__}: {exc.cause}"
""",
)
CONTROL = (
    """
import numcodecs
codec, data = numcodecs.get_codec(json.loads(sys.argv[1])), open(sys.argv[2], "rb").read()
""",
    """
result = len(codec.decode(data))
""",
)


@pytest.fixture(scope="module")
def arrays(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, dict[str, Any], Path]]:
    """kind -> (the array's folder, the codec config, the bomb chunk's file)."""
    root = tmp_path_factory.mktemp("bombs")
    made = {}
    for n, (kind, (meta, config, bomb)) in enumerate(bombs().items()):
        folder = root / f"a{n}"
        chunk = folder / ("c/0/0" if meta["zarr_format"] == 3 else "0.0")
        chunk.parent.mkdir(parents=True)
        (folder / ("zarr.json" if meta["zarr_format"] == 3 else ".zarray")).write_text(json.dumps(meta))
        chunk.write_bytes(bomb())
        assert chunk.stat().st_size < 4 * MiB
        made[kind] = (folder, config, chunk)
    return made


@pytest.mark.parametrize("kind", KINDS)
def test_a_bomb_chunk_is_refused_within_bounded_memory(kind: str, arrays: dict[str, Any]) -> None:
    folder, _, chunk = arrays[kind]
    seen = peak_growth(*READ, str(folder))
    assert seen["result"] is not None and seen["result"].startswith("CodecError"), seen
    assert "more than the" in seen["result"], seen
    assert seen["grew"] < BOUND, f"{kind}: peak RSS grew {seen['grew'] / MiB:.0f} MiB, chunk {chunk.stat().st_size} B"


@pytest.mark.parametrize("kind", KINDS)
def test_positive_control_the_codec_itself_falls_for_the_bomb(kind: str, arrays: dict[str, Any]) -> None:
    _, config, chunk = arrays[kind]
    seen = peak_growth(*CONTROL, json.dumps(config), str(chunk))
    assert seen["result"] >= BANG and seen["grew"] >= BANG, seen


def test_a_shard_index_is_checked_against_the_shard_before_it_is_allocated(tmp_path: Path) -> None:
    """300 bytes of metadata declare 2**26 inner chunks a shard (a 1 GiB index); the stored shard is small."""
    folder = tmp_path / "s"
    inner = {"name": "sharding_indexed", "configuration": {"chunk_shape": [1, 1], "codecs": [LE],
             "index_codecs": [LE, {"name": "crc32c"}]}}  # fmt: skip
    meta = {**V3, "shape": [8192, 8192], "data_type": "uint8", "fill_value": 0, "codecs": [inner],
            "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [8192, 8192]}}}  # fmt: skip
    (folder / "c/0").mkdir(parents=True)
    (folder / "zarr.json").write_text(json.dumps(meta))
    (folder / "c/0/0").write_bytes(bytes(300))
    seen = peak_growth(*READ, str(folder))
    assert seen["result"] is not None and "cannot hold its" in seen["result"], seen
    assert seen["grew"] < BOUND, seen


def test_variable_length_strings_stating_millions_of_items_are_refused_first(tmp_path: Path) -> None:
    """Four bytes of ``vlen-utf8`` data state 2**26 items: numcodecs makes room for them all (512 MiB
    of object pointers) before it finds the data truncated; we refuse a count that is not the chunk's."""
    folder = tmp_path / "strings"
    (folder / "c/0").mkdir(parents=True)
    meta = {**V3, "data_type": "string", "fill_value": "", "codecs": [{"name": "vlen-utf8"}]}
    (folder / "zarr.json").write_text(json.dumps(meta))
    (folder / "c/0/0").write_bytes((2**26).to_bytes(4, "little"))
    seen = peak_growth(*READ, str(folder))
    assert seen["result"] == "CodecError: variable-length data states 67108864 items, expected 4", seen
    assert seen["grew"] < BOUND, seen
    control = peak_growth("import numcodecs", """
try:
    numcodecs.VLenUTF8().decode(open(sys.argv[1], "rb").read())
except ValueError as exc:
    result = str(exc)
""", str(folder / "c/0/0"))  # fmt: skip
    assert "truncated" in control["result"] and control["grew"] >= BANG, control
