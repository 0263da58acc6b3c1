"""The v3 array -> array codecs (``transpose``, the element-wise ``numcodecs.*`` ones) and array ->
bytes codecs (``bytes``, ``vlen-utf8``, ``sharding_indexed``), each with the adapter that builds it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numcodecs
import numpy as np
from numcodecs.abc import Codec

from zarrcore.codecs.base import (
    Adapter,
    ArrayArrayCodec,
    ArrayBytesCodec,
    Context,
    build_numcodec,
    check_vlen_count,
    objects,
    raw_chunk,
)  # fmt: skip
from zarrcore.codecs.sharding import ShardingCodec
from zarrcore.errors import CodecError
from zarrcore.metadata.dtypes import needs_endian

__all__ = [
    "ADAPTERS", "NUMCODECS_ARRAY", "Bytes", "ElementWise", "NumcodecsArray", "Sharded", "Transpose", "VLenUTF8",
]  # fmt: skip

#: The ``numcodecs.<id>`` codecs that may stand before ``bytes``: element-wise, shape-keeping.
NUMCODECS_ARRAY = frozenset({"delta", "bitround", "quantize", "fixedscaleoffset", "astype"})


# -- array -> array ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Transpose(ArrayArrayCodec):
    """``transpose``: the chunk's axes in ``order``."""

    order: tuple[int, ...]

    @property
    def inverse(self) -> tuple[int, ...]:
        return tuple(np.argsort(self.order))

    def encode(self, chunk: np.ndarray) -> np.ndarray:
        return chunk.transpose(self.order)

    def decode(self, chunk: np.ndarray) -> np.ndarray:
        return chunk.transpose(self.inverse)

    def encoded_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(shape[i] for i in self.order)


@dataclass(frozen=True)
class ElementWise(ArrayArrayCodec):
    """A numcodecs codec that maps each element (``numcodecs.delta``, ``numcodecs.astype``...)."""

    codec: Codec
    #: The dtype it encodes to.
    dtype: np.dtype

    def encode(self, chunk: np.ndarray) -> np.ndarray:
        return np.asarray(self.codec.encode(np.ascontiguousarray(chunk))).reshape(chunk.shape)

    def decode(self, chunk: np.ndarray) -> np.ndarray:
        return np.asarray(self.codec.decode(np.ascontiguousarray(chunk))).reshape(chunk.shape)

    def encoded_dtype(self, dtype: np.dtype) -> np.dtype:
        return self.dtype


class _TransposeAdapter(Adapter):
    kind = "array->array"
    keys = frozenset({"order"})

    def make(self, config: dict[str, Any], ctx: Context) -> Transpose:
        order, ndim = config.get("order"), len(ctx.meta.shape)
        if (not isinstance(order, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in order)
                or sorted(order) != list(range(ndim))):  # fmt: skip
            raise CodecError(f"order must be a permutation of 0..{ndim - 1}, got {order!r}")
        return Transpose(tuple(order))


class NumcodecsArray(Adapter):
    """The element-wise ``numcodecs.<id>`` codecs, before the serializer."""

    kind = "array->array"
    keys = None

    def __init__(self, codec_id: str) -> None:
        self.codec_id = codec_id

    def make(self, config: dict[str, Any], ctx: Context) -> ElementWise:
        codec = build_numcodec({**config, "id": self.codec_id})
        try:
            probe = np.asarray(codec.encode(np.zeros(4, ctx.array_dtype)))
        except Exception as exc:
            raise CodecError(f"cannot encode {ctx.array_dtype}: {exc}") from None
        if probe.shape != (4,):
            raise CodecError("changes the number of elements, which is not supported")
        return ElementWise(codec, probe.dtype)


# -- array -> bytes ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Bytes(ArrayBytesCodec):
    """``bytes``: the elements' bytes in ``stored_dtype``'s byte order."""

    stored_dtype: np.dtype
    chunk_shape: tuple[int, ...]

    def encode(self, chunk: np.ndarray) -> np.ndarray:
        return chunk

    def decode(self, data: Any, shape: tuple[int, ...]) -> np.ndarray:
        expected = int(np.prod(shape, dtype=np.int64)) * self.stored_dtype.itemsize
        return raw_chunk(data, expected, self.chunk_shape).view(self.stored_dtype).reshape(shape)


@dataclass(frozen=True)
class VLenUTF8(ArrayBytesCodec):
    """``vlen-utf8``: variable-length strings, each as its length and UTF-8 bytes."""

    stored_dtype: np.dtype
    chunk_shape: tuple[int, ...]
    codec: Codec = field(default_factory=numcodecs.VLenUTF8)

    def encode(self, chunk: np.ndarray) -> Any:
        return self.codec.encode(chunk)

    def decode(self, data: Any, shape: tuple[int, ...]) -> np.ndarray:
        check_vlen_count(data, int(np.prod(shape, dtype=np.int64)))
        return objects(self.codec.decode(data), shape, self.chunk_shape)


@dataclass(frozen=True)
class Sharded(ArrayBytesCodec):
    """``sharding_indexed``: the chunk is a shard of inner chunks, each encoded by its own codecs."""

    stored_dtype: np.dtype
    sharding: ShardingCodec

    def encode(self, chunk: np.ndarray) -> bytes:
        return self.sharding.encode(chunk)

    def decode(self, data: Any, shape: tuple[int, ...]) -> np.ndarray:
        return self.sharding.decode(data)


class _BytesAdapter(Adapter):
    kind = "array->bytes"
    keys = frozenset({"endian"})

    def refuse(self, ctx: Context) -> str | None:
        if ctx.meta.dtype.kind == "O":
            return "variable-length strings are encoded by 'vlen-utf8', not 'bytes'"
        return None

    def make(self, config: dict[str, Any], ctx: Context) -> Bytes:
        endian = config.get("endian")
        if endian is None and needs_endian(ctx.array_dtype):
            raise CodecError(f"'endian' is required for {ctx.array_dtype} (its byte order matters)")
        if endian not in (None, "little", "big"):
            raise CodecError(f"endian must be 'little' or 'big', got {endian!r}")
        return Bytes(ctx.array_dtype.newbyteorder("<" if endian != "big" else ">"), ctx.meta.chunks)


class _VLenAdapter(Adapter):
    kind = "array->bytes"

    def refuse(self, ctx: Context) -> str | None:
        if ctx.meta.dtype.kind != "O":
            return f"'vlen-utf8' encodes variable-length strings, not {ctx.meta.dtype}"
        return None

    def make(self, config: dict[str, Any], ctx: Context) -> VLenUTF8:
        return VLenUTF8(ctx.meta.dtype, ctx.meta.chunks)


class _ShardingAdapter(Adapter):
    kind = "array->bytes"
    keys = None  # checked by ShardingCodec

    def refuse(self, ctx: Context) -> str | None:
        return "put numcodecs array codecs inside the shard's own codecs" if ctx.element_wise else None

    def make(self, config: dict[str, Any], ctx: Context) -> Sharded:
        return Sharded(ctx.meta.dtype, ShardingCodec(config, ctx.meta, ctx.stored_shape, ctx.build))


#: The adapters of the codecs in this module, by v3 name.
ADAPTERS: dict[str, Adapter] = {
    "transpose": _TransposeAdapter(),
    **{f"numcodecs.{codec_id}": NumcodecsArray(codec_id) for codec_id in sorted(NUMCODECS_ARRAY)},
    "bytes": _BytesAdapter(),
    "vlen-utf8": _VLenAdapter(),
    "sharding_indexed": _ShardingAdapter(),
}
