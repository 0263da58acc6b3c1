"""The v3 bytes -> bytes codecs (``blosc``, ``zstd``, ``gzip``, ``crc32c`` and any other
``numcodecs.<id>``), run by numcodecs, each with the adapter that builds it."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numcodecs
import numpy as np
from numcodecs.abc import Codec

from zarrcore.codecs.array_codecs import NUMCODECS_ARRAY
from zarrcore.codecs.base import Adapter, BytesBytesCodec, Context, Stage, build_numcodec, check_keys
from zarrcore.codecs.zstd import Zstd
from zarrcore.errors import CodecError

__all__ = ["ADAPTERS", "V3_CODECS", "Numcodec", "NumcodecsBytes"]

_BLOSC_SHUFFLE = {"noshuffle": 0, "shuffle": 1, "bitshuffle": 2}
_BLOSC_CNAMES = {"lz4", "lz4hc", "blosclz", "zstd", "snappy", "zlib"}


# -- bytes -> bytes ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Numcodec(BytesBytesCodec):
    """A bytes -> bytes codec run by numcodecs."""

    codec: Codec


class _NumcodecFactory(Adapter):
    """A v3 bytes codec with its own configuration schema, made as a numcodecs codec."""

    kind = "bytes->bytes"
    keys = None

    def make(self, config: dict[str, Any], ctx: Context) -> Numcodec:
        try:
            return Numcodec(self.numcodec(config, ctx.meta.dtype))
        except CodecError:
            raise
        except Exception as exc:
            raise CodecError(f"invalid configuration {config!r}: {exc}") from None

    @staticmethod
    @abstractmethod
    def numcodec(config: dict[str, Any], dtype: np.dtype) -> Codec: ...


class _Blosc(_NumcodecFactory):
    @staticmethod
    def numcodec(config: dict[str, Any], dtype: np.dtype) -> Codec:
        check_keys(config, {"cname", "clevel", "shuffle", "typesize", "blocksize"})
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


class _Zstd(_NumcodecFactory):
    @staticmethod
    def numcodec(config: dict[str, Any], dtype: np.dtype) -> Codec:
        check_keys(config, {"level", "checksum"})
        level = config.get("level", 0)
        if not isinstance(level, int) or not -131072 <= level <= 22:
            raise CodecError(f"level must be an integer <= 22, got {level!r}")
        checksum = config.get("checksum", False)
        if not isinstance(checksum, bool):
            raise CodecError(f"checksum must be true or false, got {checksum!r}")
        return Zstd(level=level, checksum=checksum)


class _Gzip(_NumcodecFactory):
    @staticmethod
    def numcodec(config: dict[str, Any], dtype: np.dtype) -> Codec:
        check_keys(config, {"level"})
        level = config.get("level", 5)
        if not isinstance(level, int) or not 0 <= level <= 9:
            raise CodecError(f"level must be an integer 0-9, got {level!r}")
        return numcodecs.GZip(level=level)


class _Crc32c(_NumcodecFactory):
    @staticmethod
    def numcodec(config: dict[str, Any], dtype: np.dtype) -> Codec:
        check_keys(config, set())
        from numcodecs.checksum32 import CRC32C

        return CRC32C()


class NumcodecsBytes(Adapter):
    """Any other ``numcodecs.<id>`` codec: bytes -> bytes, after the serializer."""

    kind = "bytes->bytes"
    keys = None

    def __init__(self, codec_id: str) -> None:
        self.codec_id = codec_id

    def misplaced(self, stage: Stage) -> str | None:
        if stage == "array":
            return (f"only {sorted('numcodecs.' + n for n in NUMCODECS_ARRAY)} may come before the "
                    "array->bytes codec")  # fmt: skip
        return None

    def make(self, config: dict[str, Any], ctx: Context) -> Numcodec:
        return Numcodec(build_numcodec({**config, "id": self.codec_id}))


#: The adapters of the codecs in this module with their own schema, by v3 name.
ADAPTERS: dict[str, Adapter] = {"blosc": _Blosc(), "zstd": _Zstd(), "gzip": _Gzip(), "crc32c": _Crc32c()}
#: The v3 bytes -> bytes codecs with their own schema, by name, as numcodecs factories.
V3_CODECS: dict[str, Callable[[dict[str, Any], np.dtype], Codec]] = {
    name: adapter.numcodec for name, adapter in ADAPTERS.items() if isinstance(adapter, _NumcodecFactory)
}
