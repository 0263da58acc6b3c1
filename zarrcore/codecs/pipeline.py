"""The chunk codec pipeline, built from metadata onto numcodecs.

v3: ``array -> array`` codecs (``transpose``), one ``array -> bytes`` codec (``bytes``, or
``sharding_indexed`` with its own inner codec list), then ``bytes -> bytes`` codecs (``blosc``,
``zstd``, ``gzip``, ``crc32c``). zarr-python's ``numcodecs.<id>`` codecs map onto numcodecs too:
``delta``, ``bitround``, ``quantize``, ``fixedscaleoffset`` and ``astype`` before ``bytes``, any
bytes codec after it. v2: the ``filters`` then the ``compressor``, each any codec
numcodecs knows. Building a pipeline validates every codec, so a bad configuration fails when an
array is created or opened, not at its first write.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numcodecs
import numcodecs.blosc
import numcodecs.zstd
import numpy as np
from numcodecs.abc import Codec
from numcodecs.compat import ensure_contiguous_ndarray

from zarrcore.codecs.sharding import ShardingCodec
from zarrcore.errors import CodecError
from zarrcore.metadata.dtypes import needs_endian
from zarrcore.metadata.model import ArrayMetadata

__all__ = ["CodecPipeline", "codec_configs", "default_codecs", "V3_CODECS"]

_BLOSC_SHUFFLE = {"noshuffle": 0, "shuffle": 1, "bitshuffle": 2}
#: The ``numcodecs.<id>`` codecs that may stand before ``bytes``: element-wise, shape-keeping.
_NUMCODECS_ARRAY = {"delta", "bitround", "quantize", "fixedscaleoffset", "astype"}
_BLOSC_CNAMES = {"lz4", "lz4hc", "blosclz", "zstd", "snappy", "zlib"}


def _check_keys(config: dict[str, Any], allowed: set[str]) -> None:
    unknown = set(config) - allowed
    if unknown:
        raise CodecError(f"unknown configuration keys {sorted(unknown)}")


def _blosc(config: dict[str, Any], dtype: np.dtype) -> Codec:
    _check_keys(config, {"cname", "clevel", "shuffle", "typesize", "blocksize"})
    cname = config.get("cname", "zstd")
    if cname not in _BLOSC_CNAMES:
        raise CodecError(f"cname must be one of {sorted(_BLOSC_CNAMES)}, got {cname!r}")
    shuffle = config.get("shuffle", "noshuffle")
    if shuffle not in _BLOSC_SHUFFLE:
        raise CodecError(f"shuffle must be one of {sorted(_BLOSC_SHUFFLE)}, got {shuffle!r}")
    clevel = config.get("clevel", 5)
    if not isinstance(clevel, int) or not 0 <= clevel <= 9:
        raise CodecError(f"clevel must be an integer 0-9, got {clevel!r}")
    blocksize, typesize = config.get("blocksize", 0), config.get("typesize", dtype.itemsize)
    if not isinstance(blocksize, int) or blocksize < 0:
        raise CodecError(f"blocksize must be an integer >= 0, got {blocksize!r}")
    if not isinstance(typesize, int) or typesize < 1:
        raise CodecError(f"typesize must be an integer >= 1, got {typesize!r}")
    return numcodecs.Blosc.from_config(
        {"cname": cname, "clevel": clevel, "shuffle": _BLOSC_SHUFFLE[shuffle], "blocksize": blocksize,
         "typesize": typesize}
    )  # fmt: skip


def _zstd(config: dict[str, Any], dtype: np.dtype) -> Codec:
    _check_keys(config, {"level", "checksum"})
    level = config.get("level", 0)
    if not isinstance(level, int) or not -131072 <= level <= 22:
        raise CodecError(f"level must be an integer <= 22, got {level!r}")
    checksum = config.get("checksum", False)
    if not isinstance(checksum, bool):
        raise CodecError(f"checksum must be true or false, got {checksum!r}")
    return numcodecs.Zstd(level=level, checksum=checksum)


def _gzip(config: dict[str, Any], dtype: np.dtype) -> Codec:
    _check_keys(config, {"level"})
    level = config.get("level", 5)
    if not isinstance(level, int) or not 0 <= level <= 9:
        raise CodecError(f"level must be an integer 0-9, got {level!r}")
    return numcodecs.GZip(level=level)


def _crc32c(config: dict[str, Any], dtype: np.dtype) -> Codec:
    _check_keys(config, set())
    from numcodecs.checksum32 import CRC32C

    return CRC32C()


#: The v3 bytes -> bytes codecs, by name, as numcodecs factories.
V3_CODECS: dict[str, Callable[[dict[str, Any], np.dtype], Codec]] = {
    "blosc": _blosc,
    "zstd": _zstd,
    "gzip": _gzip,
    "crc32c": _crc32c,
}


def default_codecs(dtype: np.dtype) -> list[dict[str, Any]]:
    """The v3 codecs used when none are given: little-endian bytes (``vlen-utf8`` for variable-length
    strings), then zstd level 3."""
    if dtype.kind == "O":
        return [{"name": "vlen-utf8"}, {"name": "zstd", "configuration": {"level": 3, "checksum": False}}]
    return [
        {"name": "bytes", "configuration": {"endian": "little"}} if needs_endian(dtype) else {"name": "bytes"},
        {"name": "zstd", "configuration": {"level": 3, "checksum": False}},
    ]


def codec_configs(value: Any, field: str, key: str) -> list[dict[str, Any]]:
    """``value`` as a list of codec objects, each with a string ``key`` (v3 ``"name"``, v2 ``"id"``).

    A bare string stands for ``{key: string}``. Anything else raises :class:`CodecError` naming the entry.
    """
    if not isinstance(value, list | tuple):
        raise CodecError(f"{field}: expected a list of codec objects, got {value!r}")
    out = []
    for i, config in enumerate(value):
        config = {key: config} if isinstance(config, str) else config
        if not isinstance(config, dict) or not isinstance(config.get(key), str):
            raise CodecError(f"{field}[{i}]: expected an object with a string {key!r}, got {config!r}")
        out.append(dict(config))
    return out


def _check_blosc_frame(buf: Any) -> None:
    """A blosc frame records its own length; a cut or padded chunk would otherwise decode silently."""
    view = memoryview(buf).cast("B")
    if len(view) < 16:
        raise CodecError(f"blosc: {len(view)} bytes cannot hold the 16-byte frame header")
    stated = int.from_bytes(view[12:16], "little")
    if stated != len(view):
        raise CodecError(f"blosc: the frame header states {stated} bytes but the chunk holds {len(view)}")


#: Chunks of at most this many bytes with a fast codec are :attr:`CodecPipeline.light`.
LIGHT_CHUNK_BYTES = 256 * 1024
_FAST_BLOSC = {"lz4", "blosclz", "snappy"}


def _decoder(codec: Codec) -> Callable[[Any], Any]:
    """``codec.decode``, or for blosc and zstd numcodecs' module function, which skips a wrapper
    that costs a few microseconds per chunk (the same decompression, the same checks of the frame)."""
    if type(codec) is numcodecs.Blosc:
        return numcodecs.blosc.decompress
    if type(codec) is numcodecs.Zstd:
        return numcodecs.zstd.decompress
    return codec.decode


def _blosc_without_threads() -> None:
    """Let blosc run single-threaded on every thread, unless the user chose otherwise.

    By default numcodecs runs blosc on its own threads, under one global lock, when called from
    the main thread; zarrcore already spreads chunks over a thread per core, and those extra threads
    only compete with them (zarr-python makes the same setting)."""
    if numcodecs.blosc.use_threads is None:
        numcodecs.blosc.use_threads = False


def _numcodec(config: dict[str, Any], where: str) -> Codec:
    try:
        return numcodecs.get_codec(dict(config))
    except Exception as exc:  # numcodecs raises ValueError, TypeError, KeyError...
        raise CodecError(f"{where}: cannot build codec {config!r}: {exc}") from None


@dataclass(frozen=True)
class _Transpose:
    order: tuple[int, ...]

    @property
    def inverse(self) -> tuple[int, ...]:
        return tuple(np.argsort(self.order))


class CodecPipeline:
    """Encodes a chunk-shaped ndarray to bytes and back."""

    def __init__(self, meta: ArrayMetadata) -> None:
        self.chunk_shape = meta.chunks
        self.dtype = meta.dtype
        self.zarr_format = meta.zarr_format
        #: The v3 array -> array codecs in order: transposes and ``numcodecs.*`` element-wise codecs.
        self.array_stages: list[_Transpose | Codec] = []
        self.bytes_codecs: list[Codec] = []
        self.filters: list[Codec] = []
        #: The ``sharding_indexed`` codec, when chunks are shards of inner chunks.
        self.sharding: ShardingCodec | None = None
        #: The ``vlen-utf8`` codec of a v3 array of variable-length strings.
        self.vlen: Codec | None = None
        self._labels: list[str] = []  # names of the filters then the bytes codecs, for error messages
        self.order = meta.order
        self.nbytes = int(np.prod(meta.chunks, dtype=np.int64)) * meta.dtype.itemsize
        if meta.zarr_format == 3:
            self._build_v3(meta.codecs, meta)
        else:
            self.stored_dtype = meta.dtype
            self._labels = [f"filters[{i}]" for i in range(len(meta.filters or ()))]
            self.filters = [_numcodec(f, label) for f, label in zip(meta.filters or (), self._labels, strict=True)]
            if meta.compressor:
                self.bytes_codecs = [_numcodec(meta.compressor, "compressor")]
                self._labels.append("compressor")
            if meta.dtype.kind == "O" and not any(f.codec_id == "vlen-utf8" for f in self.filters):
                raise CodecError("filters: variable-length strings (dtype '|O') need a {'id': 'vlen-utf8'} filter")
        self._probe()
        # Decoding in C order with no transpose is one reshape; the bytes codecs innermost-first.
        self._plain = meta.zarr_format == 3 and not self.array_stages and self.sharding is None and self.vlen is None
        self._stored_nbytes = int(np.prod(meta.chunks, dtype=np.int64)) * self.stored_dtype.itemsize
        self._decoders = [(_decoder(c), c.codec_id == "blosc") for c in reversed(self.bytes_codecs)]
        if any(c.codec_id == "blosc" for c in (*self.filters, *self.bytes_codecs)):
            _blosc_without_threads()
        #: Whether decoding a chunk is quick next to the Python around it: small chunks, no codec or
        #: only fast blosc. On CPython with a GIL one thread reads those fastest (a second only adds
        #: GIL handoffs around every system call); slower codecs and larger chunks spread over threads.
        self.light = (
            self.nbytes <= LIGHT_CHUNK_BYTES
            and self.sharding is None
            and self.vlen is None
            and not self.filters
            and not self._element_wise
            and all(c.codec_id == "blosc" and c.cname in _FAST_BLOSC for c in self.bytes_codecs)
            and getattr(sys, "_is_gil_enabled", lambda: True)()
        )

    def _probe(self) -> None:
        """Round-trip a few zeros through every numcodecs codec: numcodecs accepts many bad settings
        (an unknown blosc cname, gzip level 11) at construction and only fails on the first chunk."""
        n = max(1, min(self.nbytes // self.dtype.itemsize, 16))
        data: Any = np.array([""] * n, dtype=object) if self.dtype.kind == "O" else np.zeros(n, self.stored_dtype)
        if self.vlen is not None:
            data = self.vlen.encode(data)
        for label, codec in zip(self._labels, [*self.filters, *self.bytes_codecs], strict=True):
            try:
                encoded = codec.encode(data)
                codec.decode(encoded)
            except Exception as exc:
                raise CodecError(f"{label}: invalid configuration {codec.get_config()}: {exc}") from None
            data = encoded

    def _build_v3(self, codecs: Sequence[dict[str, Any]], meta: ArrayMetadata) -> None:
        ndim = len(meta.shape)
        stage = "array"
        self.stored_dtype = meta.dtype
        array_dtype = meta.dtype  # the dtype the array codecs hand to 'bytes'

        for i, codec in enumerate(codecs):
            name = codec.get("name")
            config = codec.get("configuration") or {}
            where = f"codecs[{i}] ({name!r})"
            if not isinstance(config, dict):
                raise CodecError(f"{where}: configuration must be an object")
            if name == "transpose":
                if stage != "array":
                    raise CodecError(f"{where}: array->array codecs must come before the 'bytes' codec")
                try:
                    _check_keys(config, {"order"})
                except CodecError as exc:
                    raise CodecError(f"{where}: {exc}") from None
                order = config.get("order")
                if not isinstance(order, list) or sorted(order) != list(range(ndim)):
                    raise CodecError(f"{where}: order must be a permutation of 0..{ndim - 1}, got {order!r}")
                self.array_stages.append(_Transpose(tuple(order)))
            elif isinstance(name, str) and name.startswith("numcodecs."):
                codec_id = name[len("numcodecs.") :]
                if stage != "array" and codec_id in _NUMCODECS_ARRAY:
                    raise CodecError(f"{where}: array->array codecs must come before the 'bytes' codec")
                if stage == "array" and codec_id not in _NUMCODECS_ARRAY:
                    raise CodecError(
                        f"{where}: only {sorted('numcodecs.' + n for n in _NUMCODECS_ARRAY)} may come before the "
                        "array->bytes codec"
                    )
                numcodec = _numcodec({**config, "id": codec_id}, where)
                if stage == "array":
                    try:
                        probe = np.asarray(numcodec.encode(np.zeros(4, array_dtype)))
                    except Exception as exc:
                        raise CodecError(f"{where}: cannot encode {array_dtype}: {exc}") from None
                    if probe.shape != (4,):
                        raise CodecError(f"{where}: changes the number of elements, which is not supported")
                    array_dtype = probe.dtype
                    self.array_stages.append(numcodec)
                else:
                    self.bytes_codecs.append(numcodec)
                    self._labels.append(where)
            elif name == "vlen-utf8":
                if stage != "array":
                    raise CodecError(f"{where}: only one array->bytes codec is allowed")
                if meta.dtype.kind != "O":
                    raise CodecError(f"{where}: 'vlen-utf8' encodes variable-length strings, not {meta.dtype}")
                try:
                    _check_keys(config, set())
                except CodecError as exc:
                    raise CodecError(f"{where}: {exc}") from None
                self.vlen = numcodecs.VLenUTF8()
                stage = "bytes"
            elif name == "bytes":
                if stage != "array":
                    raise CodecError(f"{where}: only one array->bytes codec is allowed")
                if meta.dtype.kind == "O":
                    raise CodecError(f"{where}: variable-length strings are encoded by 'vlen-utf8', not 'bytes'")
                try:
                    _check_keys(config, {"endian"})
                except CodecError as exc:
                    raise CodecError(f"{where}: {exc}") from None
                endian = config.get("endian")
                if endian is None and needs_endian(array_dtype):
                    raise CodecError(f"{where}: 'endian' is required for {array_dtype} (its byte order matters)")
                if endian not in (None, "little", "big"):
                    raise CodecError(f"{where}: endian must be 'little' or 'big', got {endian!r}")
                self.stored_dtype = array_dtype.newbyteorder("<" if endian != "big" else ">")
                stage = "bytes"
            elif name in V3_CODECS:
                if stage != "bytes":
                    raise CodecError(f"{where}: bytes->bytes codecs must come after the 'bytes' codec")
                try:
                    self.bytes_codecs.append(V3_CODECS[name](config, meta.dtype))
                except CodecError as exc:
                    raise CodecError(f"{where}: {exc}") from None
                except Exception as exc:
                    raise CodecError(f"{where}: invalid configuration {config!r}: {exc}") from None
                self._labels.append(where)
            elif name == "sharding_indexed":
                if stage != "array":
                    raise CodecError(f"{where}: only one array->bytes codec is allowed")
                if self._element_wise:
                    raise CodecError(f"{where}: put numcodecs array codecs inside the shard's own codecs")
                try:
                    self.sharding = ShardingCodec(config, meta, self._stored_shape(), CodecPipeline)
                except CodecError as exc:
                    raise CodecError(f"{where}: {exc}") from None
                stage = "bytes"
            else:
                raise CodecError(f"{where}: unknown codec {name!r}")
        if stage != "bytes":
            raise CodecError("codecs: an array->bytes codec ('bytes' or 'sharding_indexed') is required")

    # -- encode/decode ---------------------------------------------------------------------------
    def encode(self, chunk: np.ndarray) -> bytes | memoryview:
        """Encode a chunk of exactly ``chunk_shape``."""
        if self.zarr_format == 3:
            for stage in self.array_stages:
                if isinstance(stage, _Transpose):
                    chunk = chunk.transpose(stage.order)
                else:
                    chunk = np.asarray(stage.encode(np.ascontiguousarray(chunk))).reshape(chunk.shape)
            data: Any = np.ascontiguousarray(chunk, dtype=self.stored_dtype)
            if self.sharding is not None:
                data = self.sharding.encode(data)
            elif self.vlen is not None:
                data = self.vlen.encode(data)
        else:
            data = np.asarray(chunk, dtype=self.stored_dtype, order=self.order)
            if self.order == "F":
                data = data.T  # same memory, C-contiguous view in F order for the codecs
            for f in self.filters:
                data = f.encode(data)
        for codec in self.bytes_codecs:
            data = codec.encode(data)
        if isinstance(data, np.ndarray):
            return memoryview(ensure_contiguous_ndarray(data)).cast("B")
        return data

    def decode(self, data: bytes | memoryview) -> np.ndarray:
        """Decode stored bytes into a chunk of ``chunk_shape`` and the array's dtype."""
        if self._plain:  # the common case, once per chunk read: as few steps as possible
            buf: Any = data
            for decode, blosc in self._decoders:
                if blosc:
                    _check_blosc_frame(buf)
                buf = decode(buf)
            try:
                flat = np.frombuffer(buf, dtype=np.uint8)
            except (TypeError, ValueError, BufferError):  # not a contiguous buffer
                flat = ensure_contiguous_ndarray(buf).view(np.uint8)
            return self._shaped(flat)
        buf = data
        for codec in reversed(self.bytes_codecs):
            if codec.codec_id == "blosc":
                _check_blosc_frame(buf)
            buf = codec.decode(buf)
        if self.sharding is not None:
            return self._untransposed(self.sharding.decode(buf))
        if self.vlen is not None:
            return self._untransposed(self._objects(self.vlen.decode(buf), self._stored_shape()))
        if self.zarr_format == 2:
            for f in reversed(self.filters):
                buf = f.decode(buf)
            if self.dtype.kind == "O":
                return self._objects(buf, self.chunk_shape, self.order)
        return self._shaped(ensure_contiguous_ndarray(buf).view(np.uint8))

    def _shaped(self, arr: np.ndarray) -> np.ndarray:
        """Decoded bytes (a flat uint8 array) as a chunk of ``chunk_shape`` and the array's dtype."""
        if arr.nbytes != self._stored_nbytes:
            raise CodecError(
                f"decoded chunk has {arr.nbytes} bytes, expected {self._stored_nbytes} for chunk shape "
                f"{self.chunk_shape}"
            )
        arr = arr.view(self.stored_dtype)
        if self._plain:
            out = arr.reshape(self.chunk_shape)
        elif self.zarr_format == 2:
            out = arr.reshape(self.chunk_shape, order=self.order)
        else:
            return self._untransposed(arr.reshape(self._stored_shape()))
        if out.dtype != self.dtype:
            out = out.astype(self.dtype)
        return out

    @property
    def transposes(self) -> list[_Transpose]:
        """The ``transpose`` codecs among the array -> array codecs, in order."""
        return [s for s in self.array_stages if isinstance(s, _Transpose)]

    @property
    def _element_wise(self) -> bool:
        """Whether a ``numcodecs.*`` element-wise codec is among the array -> array codecs."""
        return any(not isinstance(s, _Transpose) for s in self.array_stages)

    def _stored_shape(self) -> tuple[int, ...]:
        """The chunk shape in stored axis order (after the v3 transposes)."""
        shape = self.chunk_shape
        for t in self.transposes:
            shape = tuple(shape[i] for i in t.order)
        return shape

    def _objects(self, flat: Any, shape: tuple[int, ...], order: str = "C") -> np.ndarray:
        """Decoded variable-length strings (a flat object array) as a chunk of ``shape``."""
        count = int(np.prod(shape, dtype=np.int64))
        if not isinstance(flat, np.ndarray) or flat.dtype.kind != "O" or flat.size != count:
            size = getattr(flat, "size", "?")
            raise CodecError(f"decoded chunk has {size} strings, expected {count} for chunk shape {self.chunk_shape}")
        return flat.reshape(shape, order=order)  # type: ignore[call-overload,no-any-return]

    def _untransposed(self, out: np.ndarray) -> np.ndarray:
        """A decoded v3 chunk in its stored axis order back in the array's order and dtype."""
        for stage in reversed(self.array_stages):
            if isinstance(stage, _Transpose):
                out = out.transpose(stage.inverse)
            else:
                out = np.asarray(stage.decode(np.ascontiguousarray(out))).reshape(out.shape)
        if out.dtype != self.dtype:
            out = out.astype(self.dtype)
        return out
