"""The v3 codecs by name, and a v3 codec list built into a chain.

Every v3 codec name has an adapter (:mod:`zarrcore.codecs.array_codecs`,
:mod:`zarrcore.codecs.bytes_codecs`) that knows its place in the list and builds it from its
configuration; ``numcodecs.<id>`` names that are not element-wise are numcodecs' bytes codecs.
:func:`build_v3` walks the list once: it checks each codec's place, asks its adapter to build it,
and names the codec (``codecs[2] ('zstd'): ...``) in any error.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numcodecs.abc import Codec

from zarrcore.codecs import array_codecs, bytes_codecs
from zarrcore.codecs.array_codecs import Bytes, ElementWise, Sharded, VLenUTF8
from zarrcore.codecs.base import Adapter, ArrayArrayCodec, ArrayBytesCodec, Chain, Context, Stage, located
from zarrcore.codecs.bounded import outer_limit
from zarrcore.codecs.bytes_codecs import V3_CODECS, NumcodecsBytes
from zarrcore.errors import CodecError
from zarrcore.metadata.model import ArrayMetadata

__all__ = ["V3_CODECS", "V3Chain", "build_v3", "lookup"]

#: Every v3 codec name zarrcore knows, with its adapter.
_ADAPTERS: dict[str, Adapter] = {**array_codecs.ADAPTERS, **bytes_codecs.ADAPTERS}


def lookup(name: Any) -> Adapter:
    """The adapter of a v3 codec name; other ``numcodecs.<id>`` names are numcodecs' bytes codecs."""
    adapter = _ADAPTERS.get(name) if isinstance(name, str) else None
    if adapter is None and isinstance(name, str) and name.startswith("numcodecs."):
        adapter = NumcodecsBytes(name[len("numcodecs.") :])
    if adapter is None:
        raise CodecError(f"unknown codec {name!r}")
    return adapter


class V3Chain(Chain):
    """A built v3 codec list: array -> array codecs, the serializer, then numcodecs bytes codecs."""

    def __init__(
        self,
        meta: ArrayMetadata,
        array_stages: tuple[ArrayArrayCodec, ...],
        serializer: ArrayBytesCodec,
        bytes_codecs: tuple[Codec, ...],
        labels: tuple[str, ...],
    ) -> None:
        super().__init__(meta.chunks, meta.dtype, serializer.stored_dtype, bytes_codecs)
        self.array_stages = array_stages
        self.serializer = serializer
        self.sharding = serializer.sharding if isinstance(serializer, Sharded) else None
        self._labels = labels
        shape = meta.chunks
        for stage in array_stages:
            shape = stage.encoded_shape(shape)
        #: The chunk shape in stored axis order (after the transposes).
        self.stored_shape = shape

    def encode(self, chunk: np.ndarray) -> Any:
        for stage in self.array_stages:
            chunk = stage.encode(chunk)
        if self.sharding is not None:  # a shard is copied once, inner chunk by inner chunk, by the codec
            return self.serializer.encode(np.asarray(chunk, dtype=self.stored_dtype))
        return self.serializer.encode(np.ascontiguousarray(chunk, dtype=self.stored_dtype))

    def decode(self, data: Any) -> np.ndarray:
        out = self.serializer.decode(data, self.stored_shape)
        for stage in reversed(self.array_stages):
            out = stage.decode(out)
        return out if out.dtype == self.dtype else out.astype(self.dtype)

    def checked(self) -> list[tuple[str, Codec]]:
        return list(zip(self._labels, self.bytes_codecs, strict=True))

    def probe_input(self, n: int) -> Any:
        data = super().probe_input(n)
        return self.serializer.encode(data) if isinstance(self.serializer, VLenUTF8) else data

    @property
    def plain(self) -> bool:
        return not self.array_stages and isinstance(self.serializer, Bytes)

    def decoded_limit(self) -> tuple[int | None, bool]:
        if isinstance(self.serializer, Bytes):
            return int(np.prod(self.stored_shape, dtype=np.int64)) * self.stored_dtype.itemsize, True
        if self.sharding is not None:  # every inner chunk stored, each at its largest, and the index
            sharding = self.sharding
            return sharding.count * outer_limit(sharding.inner.nbytes) + sharding.index_nbytes, False
        return None, False

    @property
    def simple(self) -> bool:
        elementwise = any(isinstance(s, ElementWise) for s in self.array_stages)
        return isinstance(self.serializer, Bytes) and not elementwise


def build_v3(meta: ArrayMetadata, build: Callable[[ArrayMetadata], Any]) -> V3Chain:
    """The chain of ``meta.codecs``; ``build`` makes the pipeline of a shard's inner chunks and index."""
    stage: Stage = "array"
    array_stages: list[ArrayArrayCodec] = []
    serializer: ArrayBytesCodec | None = None
    numcodecs_: list[Codec] = []
    labels: list[str] = []
    dtype, shape = meta.dtype, meta.chunks  # what the array -> array codecs so far hand on
    for i, codec in enumerate(meta.codecs):
        name = codec.get("name")
        config = codec.get("configuration") or {}
        where = f"codecs[{i}] ({name!r})"
        with located(where):
            if not isinstance(config, dict):
                raise CodecError("configuration must be an object")
            adapter = lookup(name)
            misplaced = adapter.misplaced(stage)
            if misplaced:
                raise CodecError(misplaced)
            element_wise = any(isinstance(s, ElementWise) for s in array_stages)
            built = adapter.build(config, Context(meta, dtype, shape, element_wise, build))
        if isinstance(built, ArrayArrayCodec):
            array_stages.append(built)
            dtype, shape = built.encoded_dtype(dtype), built.encoded_shape(shape)
        elif isinstance(built, ArrayBytesCodec):
            serializer, stage = built, "bytes"
        else:
            numcodecs_.append(built.codec)
            labels.append(where)
    if serializer is None:
        raise CodecError("codecs: an array->bytes codec ('bytes' or 'sharding_indexed') is required")
    return V3Chain(meta, tuple(array_stages), serializer, tuple(numcodecs_), tuple(labels))
