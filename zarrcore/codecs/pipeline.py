"""The chunk codec pipeline, built from metadata onto numcodecs.

v3: ``array -> array`` codecs (``transpose``), one ``array -> bytes`` codec (``bytes``), then
``bytes -> bytes`` codecs (``blosc``, ``zstd``, ``gzip``, ``crc32c``). v2: the ``filters`` then the
``compressor``, each any codec numcodecs knows. Building a pipeline validates every codec, so a bad
configuration fails when an array is created or opened, not at its first write.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numcodecs
import numpy as np
from numcodecs.abc import Codec
from numcodecs.compat import ensure_contiguous_ndarray

from zarrcore.errors import CodecError
from zarrcore.metadata.model import ArrayMetadata

__all__ = ["CodecPipeline", "default_codecs", "V3_CODECS"]

_BLOSC_SHUFFLE = {"noshuffle": 0, "shuffle": 1, "bitshuffle": 2}
_BLOSC_CNAMES = {"lz4", "lz4hc", "blosclz", "zstd", "snappy", "zlib"}


def _check_keys(name: str, config: dict[str, Any], allowed: set[str]) -> None:
    unknown = set(config) - allowed
    if unknown:
        raise CodecError(f"codec {name!r}: unknown configuration keys {sorted(unknown)}")


def _blosc(config: dict[str, Any], dtype: np.dtype) -> Codec:
    _check_keys("blosc", config, {"cname", "clevel", "shuffle", "typesize", "blocksize"})
    cname = config.get("cname", "zstd")
    if cname not in _BLOSC_CNAMES:
        raise CodecError(f"codec 'blosc': cname must be one of {sorted(_BLOSC_CNAMES)}, got {cname!r}")
    shuffle = config.get("shuffle", "noshuffle")
    if shuffle not in _BLOSC_SHUFFLE:
        raise CodecError(f"codec 'blosc': shuffle must be one of {sorted(_BLOSC_SHUFFLE)}, got {shuffle!r}")
    clevel = config.get("clevel", 5)
    if not isinstance(clevel, int) or not 0 <= clevel <= 9:
        raise CodecError(f"codec 'blosc': clevel must be an integer 0-9, got {clevel!r}")
    return numcodecs.Blosc.from_config(
        {
            "cname": cname,
            "clevel": clevel,
            "shuffle": _BLOSC_SHUFFLE[shuffle],
            "blocksize": int(config.get("blocksize", 0)),
            "typesize": int(config.get("typesize", dtype.itemsize)),
        }
    )


def _zstd(config: dict[str, Any], dtype: np.dtype) -> Codec:
    _check_keys("zstd", config, {"level", "checksum"})
    level = config.get("level", 0)
    if not isinstance(level, int) or not -131072 <= level <= 22:
        raise CodecError(f"codec 'zstd': level must be an integer <= 22, got {level!r}")
    return numcodecs.Zstd(level=level, checksum=bool(config.get("checksum", False)))


def _gzip(config: dict[str, Any], dtype: np.dtype) -> Codec:
    _check_keys("gzip", config, {"level"})
    level = config.get("level", 5)
    if not isinstance(level, int) or not 0 <= level <= 9:
        raise CodecError(f"codec 'gzip': level must be an integer 0-9, got {level!r}")
    return numcodecs.GZip(level=level)


def _crc32c(config: dict[str, Any], dtype: np.dtype) -> Codec:
    _check_keys("crc32c", config, set())
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
    """The v3 codecs used when none are given: little-endian bytes, then zstd level 3."""
    return [
        {"name": "bytes", "configuration": {"endian": "little"}} if dtype.itemsize > 1 else {"name": "bytes"},
        {"name": "zstd", "configuration": {"level": 3, "checksum": False}},
    ]


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
        self.transposes: list[_Transpose] = []
        self.bytes_codecs: list[Codec] = []
        self.filters: list[Codec] = []
        self.order = meta.order
        self.nbytes = int(np.prod(meta.chunks, dtype=np.int64)) * meta.dtype.itemsize
        if meta.zarr_format == 3:
            self._build_v3(meta.codecs, meta)
        else:
            self.stored_dtype = meta.dtype
            self.filters = [_numcodec(f, "filters") for f in (meta.filters or ())]
            if meta.compressor:
                self.bytes_codecs = [_numcodec(meta.compressor, "compressor")]

    def _build_v3(self, codecs: Sequence[dict[str, Any]], meta: ArrayMetadata) -> None:
        ndim = len(meta.shape)
        stage = "array"
        self.stored_dtype = meta.dtype
        for i, codec in enumerate(codecs):
            name = codec.get("name")
            config = codec.get("configuration") or {}
            where = f"codecs[{i}] ({name!r})"
            if not isinstance(config, dict):
                raise CodecError(f"{where}: configuration must be an object")
            if name == "transpose":
                if stage != "array":
                    raise CodecError(f"{where}: array->array codecs must come before the 'bytes' codec")
                _check_keys("transpose", config, {"order"})
                order = config.get("order")
                if not isinstance(order, list) or sorted(order) != list(range(ndim)):
                    raise CodecError(f"{where}: order must be a permutation of 0..{ndim - 1}, got {order!r}")
                self.transposes.append(_Transpose(tuple(order)))
            elif name == "bytes":
                if stage != "array":
                    raise CodecError(f"{where}: only one array->bytes codec is allowed")
                _check_keys("bytes", config, {"endian"})
                endian = config.get("endian")
                if endian is None and meta.dtype.itemsize > 1:
                    raise CodecError(f"{where}: 'endian' is required for {meta.dtype} (itemsize > 1)")
                if endian not in (None, "little", "big"):
                    raise CodecError(f"{where}: endian must be 'little' or 'big', got {endian!r}")
                self.stored_dtype = meta.dtype.newbyteorder("<" if endian != "big" else ">")
                stage = "bytes"
            elif name in V3_CODECS:
                if stage != "bytes":
                    raise CodecError(f"{where}: bytes->bytes codecs must come after the 'bytes' codec")
                try:
                    self.bytes_codecs.append(V3_CODECS[name](config, meta.dtype))
                except CodecError:
                    raise
                except Exception as exc:
                    raise CodecError(f"{where}: invalid configuration {config!r}: {exc}") from None
            elif name == "sharding_indexed":
                raise CodecError(f"{where}: sharding is not supported by this reader")
            else:
                raise CodecError(f"{where}: unknown codec {name!r}")
        if stage != "bytes":
            raise CodecError("codecs: an array->bytes codec ('bytes') is required")

    # -- encode/decode ---------------------------------------------------------------------------
    def encode(self, chunk: np.ndarray) -> bytes | memoryview:
        """Encode a chunk of exactly ``chunk_shape``."""
        if self.zarr_format == 3:
            for t in self.transposes:
                chunk = chunk.transpose(t.order)
            data: Any = np.ascontiguousarray(chunk, dtype=self.stored_dtype)
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
        buf: Any = data
        for codec in reversed(self.bytes_codecs):
            buf = codec.decode(buf)
        if self.zarr_format == 2:
            for f in reversed(self.filters):
                buf = f.decode(buf)
        arr = ensure_contiguous_ndarray(buf).view(np.uint8)
        if arr.nbytes != self.nbytes:
            raise CodecError(
                f"decoded chunk has {arr.nbytes} bytes, expected {self.nbytes} for chunk shape {self.chunk_shape}"
            )
        arr = arr.view(self.stored_dtype)
        if self.zarr_format == 2:
            out = arr.reshape(self.chunk_shape, order=self.order)
        else:
            shape = self.chunk_shape
            for t in self.transposes:
                shape = tuple(shape[i] for i in t.order)
            out = arr.reshape(shape)
            for t in reversed(self.transposes):
                out = out.transpose(t.inverse)
        if out.dtype != self.dtype:
            out = out.astype(self.dtype)
        return out
