"""Decoders that never produce more bytes than a chunk can hold.

A stored chunk is untrusted input: 24 KiB of zstd can state, or simply stream, gigabytes. Each
decoder here is given ``limit``, the most bytes its output may have, and checks it *before* the
output is made: from the size a frame states (blosc, lz4, zstd with a content size), or by
decompressing with a bounded output (zlib, gzip, bz2, lzma, zstd without one). Any other numcodecs
codec is checked after it ran (its output may then briefly exceed the limit).

A blosc frame followed by trailing bytes is decoded from the length its header states (z5py writes
such chunks, and zarr-python reads them); a frame shorter than it states is refused.
"""

from __future__ import annotations

import bz2
import lzma
import zlib
from collections.abc import Callable
from typing import Any

import numcodecs
import numcodecs.blosc
import numcodecs.zstd
import numpy as np
import zstandard
from numcodecs.abc import Codec

from zarrcore.codecs.zstd import decompressor
from zarrcore.errors import CodecError

__all__ = ["SLACK", "bounded_decoder", "into_decoder", "outer_limit"]

#: What a codec's own framing may add to the bytes it encodes, at most (``outer_limit``).
SLACK = 64 * 1024

Decoder = Callable[[Any], Any]
#: Decodes into a caller's buffer; ``False``: the frame does not state the buffer's size, nothing written.
IntoDecoder = Callable[[Any, Any], bool]
_ZSTD_MAGIC = 0xFD2FB528


def outer_limit(limit: int) -> int:
    """The most bytes an encoded form of ``limit`` bytes may take: what a codec that runs after
    another one (zstd over blosc, say) may decode to."""
    return limit + SLACK + limit // 64


def _too_big(name: str, size: int | str, limit: int) -> CodecError:
    return CodecError(f"{name}: the data decodes to {size} bytes, more than the {limit} a chunk can hold")


def _blosc_frame(buf: Any) -> tuple[memoryview, int]:
    """A blosc frame without the bytes that may trail it, and the size its header states it decodes to."""
    view = memoryview(buf).cast("B")
    if len(view) < 16:
        raise CodecError(f"blosc: {len(view)} bytes cannot hold the 16-byte frame header")
    nbytes, cbytes = int.from_bytes(view[4:8], "little"), int.from_bytes(view[12:16], "little")
    if cbytes > len(view):
        raise CodecError(f"blosc: the frame header states {cbytes} bytes but the chunk holds {len(view)}")
    return (view[:cbytes] if cbytes < len(view) else view), nbytes


def _blosc(buf: Any, limit: int) -> Any:
    frame, nbytes = _blosc_frame(buf)
    if nbytes > limit:
        raise _too_big("blosc", nbytes, limit)
    return numcodecs.blosc.decompress(frame)


def zstd_content_size(view: memoryview) -> int | None:
    """The decompressed size a zstd frame's header states, or ``None`` if it states none, or the bytes
    are no zstd frame (RFC 8878 3.1.1.1; read by zstd's own header parser)."""
    try:
        size = zstandard.frame_content_size(view)
    except zstandard.ZstdError:
        return None
    return size if size >= 0 and int.from_bytes(view[:4], "little") == _ZSTD_MAGIC else None


def _zstd(buf: Any, limit: int, exact: bool) -> Any:
    view = memoryview(buf).cast("B")
    size = zstd_content_size(view)
    if size is not None:
        if size > limit:
            raise _too_big("zstd", size, limit)
        try:  # one frame, nothing after it: on the thread's own context
            return decompressor().decompress(view, allow_extra_data=False)
        except zstandard.ZstdError:  # several frames, or damage: numcodecs decodes or names it
            return numcodecs.zstd.decompress(view)
    if not exact:  # numcodecs would stream the frame into memory without end
        raise CodecError("zstd: a frame that does not state its size can only be the first codec of the chain")
    try:  # into a buffer of exactly the chunk's size: more is "too small", less is "expected ..."
        return numcodecs.zstd.decompress(view, np.empty(limit, dtype=np.uint8))
    except RuntimeError as exc:
        if "too small" in str(exc):
            raise _too_big("zstd", f"more than {limit}", limit) from None
        raise CodecError(f"zstd: {exc} (a chunk holds {limit} bytes)") from None


def _inflate(buf: Any, limit: int, name: str, wbits: int) -> Any:
    """zlib (``wbits`` 15) or gzip (31, members one after another) with at most ``limit`` bytes out;
    trailing bytes after a zlib stream are ignored, as :func:`zlib.decompress` does."""
    data: Any = memoryview(buf).cast("B")
    parts: list[bytes] = []
    total = 0
    while True:
        inflater = zlib.decompressobj(wbits)
        try:
            part = inflater.decompress(data, limit + 1 - total)
        except zlib.error as exc:
            raise CodecError(f"{name}: {exc}") from None
        total += len(part)
        parts.append(part)
        if total > limit or inflater.unconsumed_tail:
            raise _too_big(name, f"more than {limit}", limit)
        if not inflater.eof:
            raise CodecError(f"{name}: the stream is cut short")
        data = inflater.unused_data.lstrip(b"\0")
        if wbits == zlib.MAX_WBITS or not data:
            return parts[0] if len(parts) == 1 else b"".join(parts)


def _unpack(buf: Any, limit: int, name: str, make: Callable[[], Any]) -> Any:
    """bz2 or lzma (streams one after another) with at most ``limit`` bytes out."""
    data: Any = bytes(buf)
    parts: list[bytes] = []
    total = 0
    while data:
        unpacker = make()
        try:
            part = unpacker.decompress(data, limit + 1 - total)
        except (OSError, EOFError, lzma.LZMAError, ValueError) as exc:
            raise CodecError(f"{name}: {exc}") from None
        total += len(part)
        parts.append(part)
        if total > limit:
            raise _too_big(name, f"more than {limit}", limit)
        if not unpacker.eof:
            raise CodecError(f"{name}: the stream is cut short")
        data = unpacker.unused_data
    return b"".join(parts)


def _lz4(codec: Codec, buf: Any, limit: int) -> Any:
    view = memoryview(buf).cast("B")
    if len(view) < 4:
        raise CodecError(f"lz4: {len(view)} bytes cannot hold the 4-byte size header")
    size = int.from_bytes(view[:4], "little")
    if size > limit:
        raise _too_big("lz4", size, limit)
    return codec.decode(view)


def _after(codec: Codec, buf: Any, limit: int) -> Any:
    out = codec.decode(buf)
    size = memoryview(out).nbytes if not isinstance(out, np.ndarray) else out.nbytes
    if size > limit:
        raise _too_big(codec.codec_id, size, limit)
    return out


def bounded_decoder(codec: Codec, limit: int | None, *, exact: bool = False) -> Decoder:
    """``codec``'s decode, refusing output over ``limit`` bytes (``None``: no bound, for
    variable-length strings). ``exact``: the output must be exactly ``limit`` bytes (the chain's
    first codec, whose decoded form is the chunk)."""
    kind = type(codec)
    if limit is None:
        if kind is numcodecs.Blosc:
            return lambda buf: _blosc(buf, 2**63)
        return codec.decode
    if kind is numcodecs.Blosc:
        return lambda buf: _blosc(buf, limit)
    if issubclass(kind, numcodecs.Zstd):
        return lambda buf: _zstd(buf, limit, exact)
    if kind is numcodecs.Zlib:
        return lambda buf: _inflate(buf, limit, "zlib", zlib.MAX_WBITS)
    if kind is numcodecs.GZip:
        return lambda buf: _inflate(buf, limit, "gzip", 16 + zlib.MAX_WBITS)
    if kind is numcodecs.BZ2:
        return lambda buf: _unpack(buf, limit, "bz2", bz2.BZ2Decompressor)
    if kind is numcodecs.LZMA:
        fmt, filters = codec.format, codec.filters  # type: ignore[attr-defined]
        return lambda buf: _unpack(buf, limit, "lzma", lambda: lzma.LZMADecompressor(fmt, filters=filters))
    if kind is getattr(numcodecs, "LZ4", None):
        return lambda buf: _lz4(codec, buf, limit)
    return lambda buf: _after(codec, buf, limit)


def _blosc_into(buf: Any, out: Any, nbytes: int) -> bool:
    frame, stated = _blosc_frame(buf)
    if stated != nbytes:
        return False
    numcodecs.blosc.decompress(frame, out)
    return True


def _zstd_into(buf: Any, out: Any, nbytes: int) -> bool:
    view = memoryview(buf).cast("B")
    if zstd_content_size(view) != nbytes:  # zstd itself refuses a frame whose content differs from it
        return False
    numcodecs.zstd.decompress(view, out)
    return True


def into_decoder(codec: Codec, nbytes: int) -> IntoDecoder | None:
    """``codec``'s decode straight into a caller's C-contiguous buffer of ``nbytes`` (no output of its
    own to allocate, touch and copy), for the codecs whose frames state their size: blosc and zstd.
    ``None`` for any other codec. The decoder refuses a malformed blosc frame as :func:`bounded_decoder`
    does, and returns ``False``, having written nothing, when a frame does not state exactly
    ``nbytes``: :func:`bounded_decoder` then decodes or refuses it."""
    kind = type(codec)
    if kind is numcodecs.Blosc:
        return lambda buf, out: _blosc_into(buf, out, nbytes)
    if issubclass(kind, numcodecs.Zstd):
        return lambda buf, out: _zstd_into(buf, out, nbytes)
    return None
