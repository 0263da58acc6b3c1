"""zstd encodes on a compression context kept per thread: the frames are what numcodecs and
zarr-python read, state their size (the bounded decoders need it), carry a checksum when asked, and
threads encoding at once at different settings never mix their contexts."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numcodecs
import numpy as np
import pytest
import zarr
import zstandard

import zarrcore
from zarrcore.codecs.base import build_numcodec
from zarrcore.codecs.bounded import bounded_decoder, zstd_content_size
from zarrcore.codecs.zstd import Zstd
from zarrcore.errors import CodecError

ZSTD = [{"name": "bytes", "configuration": {"endian": "little"}}, {"name": "zstd", "configuration": {"level": 1}}]


def _data(seed: int, n: int = 16_384) -> np.ndarray:
    return np.round(np.random.default_rng(seed).standard_normal(n), 2).astype("float32")


def run_at_once(target: Callable[[Any], None], args: Iterable[Any]) -> None:
    """``target(arg)`` on a thread per arg, all started, then joined (each within 60 s)."""
    threads = [threading.Thread(target=target, args=(a,)) for a in args]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)


@pytest.mark.parametrize("level", [-5, 0, 1, 3, 22])
@pytest.mark.parametrize("checksum", [False, True])
def test_frames_decode_with_numcodecs_state_their_size_and_carry_a_checksum(level: int, checksum: bool) -> None:
    data = _data(abs(level))
    frame = Zstd(level=level, checksum=checksum).encode(data)
    assert np.array_equal(np.frombuffer(numcodecs.Zstd().decode(frame), "float32"), data)
    assert zstd_content_size(memoryview(frame)) == data.nbytes
    assert zstandard.get_frame_parameters(frame).has_checksum is checksum
    if checksum:  # the checksum is checked: a flipped byte of content is refused
        bad = bytearray(frame)
        bad[len(bad) // 2] ^= 0xFF
        with pytest.raises(RuntimeError):
            numcodecs.Zstd().decode(bytes(bad))


def test_v2_and_v3_arrays_encode_with_it_and_zarr_python_reads_them(tmp_path: Path) -> None:
    data = _data(1, 64 * 64).reshape(64, 64)
    v3 = zarrcore.create(tmp_path / "v3", shape=data.shape, chunks=(32, 32), dtype="float32", codecs=ZSTD)
    v2 = zarrcore.create(tmp_path / "v2", shape=data.shape, chunks=(32, 32), dtype="float32", zarr_format=2,
                         compressor={"id": "zstd", "level": 1})  # fmt: skip
    for a in (v3, v2):
        assert isinstance(a._pipeline._encoders[0], Zstd)  # the encoder actually in use
        a[...] = data
        np.testing.assert_array_equal(zarr.open_array(str(a.store.root), mode="r")[...], data)
    assert isinstance(build_numcodec({"id": "zstd", "level": 2, "checksum": True}), Zstd)


def test_threads_encoding_at_once_at_different_settings_give_each_its_own_frames() -> None:
    settings = [(1, False), (1, True), (5, False), (-3, True)]
    inputs = [_data(seed, 8_192) for seed in range(24)]
    expected = {s: [numcodecs.Zstd(level=s[0], checksum=s[1]).decode(Zstd(*s).encode(x)) for x in inputs]
                for s in settings}  # fmt: skip
    start, errors = threading.Barrier(len(settings) * 2), []

    def encode(setting: tuple[int, bool]) -> None:
        codec = Zstd(level=setting[0], checksum=setting[1])
        start.wait()
        for _ in range(20):
            for x, want in zip(inputs, expected[setting], strict=True):
                frame = codec.encode(x)
                if zstandard.get_frame_parameters(frame).has_checksum is not setting[1] or \
                        numcodecs.Zstd().decode(frame) != want:  # fmt: skip
                    errors.append(setting)
                    return

    run_at_once(encode, settings * 2)
    assert errors == []


def _decode(frame: bytes, limit: int = 1 << 20) -> bytes:
    """A frame through the bounded decoder a chunk's zstd codec gets (not the chain's first codec)."""
    return bytes(memoryview(bounded_decoder(numcodecs.Zstd(), limit)(frame)).cast("B"))


def _outcome(decode: Callable[[bytes], bytes], frame: bytes) -> tuple[str, bytes]:
    try:
        return "decoded", decode(frame)
    except Exception:
        return "refused", b""


def test_frames_decode_on_the_threads_context_as_numcodecs_decodes_them() -> None:
    """One frame decodes on the thread's own context; anything else (two frames, trailing bytes, a
    damaged or cut frame, a checksum that does not match) is decoded or refused as numcodecs does."""
    data = _data(4)
    frame, checked = Zstd(level=1).encode(data), Zstd(level=3, checksum=True).encode(data)
    flipped = bytearray(checked)
    flipped[len(flipped) // 2] ^= 0xFF
    cases = {"one frame": frame, "checksummed": checked, "two frames": frame + Zstd(level=1).encode(data[:100]),
             "trailing bytes": frame + b"\0" * 7, "cut short": frame[:-9], "flipped byte": bytes(flipped)}  # fmt: skip
    outcomes = {name: _outcome(_decode, f) for name, f in cases.items()}
    assert outcomes == {name: _outcome(lambda f: bytes(numcodecs.zstd.decompress(f)), f) for name, f in cases.items()}
    assert outcomes["one frame"] == outcomes["checksummed"] == ("decoded", data.tobytes())  # a positive control
    assert outcomes["flipped byte"] == outcomes["cut short"] == outcomes["trailing bytes"] == ("refused", b"")
    assert outcomes["two frames"][0] == "decoded"
    with pytest.raises(CodecError, match="more than the"):
        _decode(frame, limit=data.nbytes - 1)  # the stated size is checked before anything is decoded


def test_threads_decoding_at_once_each_get_their_own_values() -> None:
    frames = [Zstd(level=1).encode(_data(seed, 8_192)) for seed in range(16)]
    expected = [numcodecs.zstd.decompress(f) for f in frames]
    start, errors = threading.Barrier(4), []

    def decode(offset: int) -> None:
        start.wait()
        for _ in range(30):
            for n in range(len(frames)):
                k = (n + offset) % len(frames)
                if _decode(frames[k]) != expected[k]:
                    errors.append(k)
                    return

    run_at_once(decode, range(4))
    assert errors == []
