"""The chunk codec pipeline: a built codec chain (v3 :mod:`~zarrcore.codecs.registry`, v2
:mod:`~zarrcore.codecs.v2`) run on chunks, with a short decode path for the common case.

Building a pipeline validates every codec, so a bad configuration fails when an array is created or
opened, not at its first write. Importing this module makes blosc single-threaded unless the user
chose otherwise (see :data:`numcodecs.blosc.use_threads` below).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import numcodecs
import numcodecs.blosc
import numpy as np
from numcodecs.abc import Codec
from numcodecs.compat import ensure_contiguous_ndarray

from zarrcore.codecs.base import ArrayArrayCodec, Chain, located, raw_chunk
from zarrcore.codecs.bounded import bounded_decoder, into_decoder, outer_limit
from zarrcore.codecs.defaults import codec_configs, default_codecs
from zarrcore.codecs.registry import V3_CODECS, build_v3
from zarrcore.codecs.sharding import ShardingCodec
from zarrcore.codecs.v2 import build_v2
from zarrcore.errors import CodecError
from zarrcore.metadata.model import ArrayMetadata

__all__ = ["LIGHT_CHUNK_BYTES", "V3_CODECS", "CodecPipeline", "codec_configs", "default_codecs"]

#: Chunks of at most this many bytes with a fast codec are :attr:`CodecPipeline.light`.
LIGHT_CHUNK_BYTES = 256 * 1024
_FAST_BLOSC = {"lz4", "blosclz", "snappy"}

# numcodecs runs blosc on blosc's own threads (one global context, under a lock) when it is called
# from the main thread, and single-threaded from any other thread. zarrcore runs chunks on the
# calling thread and on pool threads, one per core, so blosc's threads on the calling thread only
# compete with the pool (4 MiB blosc-lz4 reads measured ~15-25% slower). Hence, once at import and
# as zarr-python does: single-threaded blosc everywhere, unless the user set ``use_threads`` first
# (a value set later also stands).
if numcodecs.blosc.use_threads is None:
    numcodecs.blosc.use_threads = False


def _decoders(chain: Chain) -> tuple[Callable[[Any], Any], ...]:
    """The bytes codecs' decoders in decode order (outermost first), each bounded by what a chunk can
    hold (see :mod:`~zarrcore.codecs.bounded`): the last one, whose output is the chunk, by its size."""
    limit, exact = chain.decoded_limit()
    decoders = []
    for codec in chain.bytes_codecs:  # encode order: the first one decodes last
        decoders.append(bounded_decoder(codec, limit, exact=exact))
        limit, exact = (None if limit is None else outer_limit(limit)), False
    return tuple(reversed(decoders))


def _probe(chain: Chain, nbytes: int) -> None:
    """Round-trip a few zeros through every numcodecs codec: numcodecs accepts many bad settings
    (an unknown blosc cname, gzip level 11) at construction and only fails on the first chunk."""
    data = chain.probe_input(max(1, min(nbytes // chain.dtype.itemsize, 16)))
    for label, codec in chain.checked():
        with located(label):
            try:
                encoded = codec.encode(data)
                codec.decode(encoded)
            except Exception as exc:
                raise CodecError(f"invalid configuration {codec.get_config()}: {exc}") from None
        data = encoded


def _light(chain: Chain, nbytes: int) -> bool:
    """Whether decoding a chunk is quick next to the Python around it: small chunks, no codec or
    only fast blosc. On CPython with a GIL one thread reads those fastest (a second only adds GIL
    handoffs around every system call); slower codecs and larger chunks spread over threads."""
    return (
        nbytes <= LIGHT_CHUNK_BYTES
        and chain.simple
        and all(c.codec_id == "blosc" and c.cname in _FAST_BLOSC for c in chain.bytes_codecs)
        and getattr(sys, "_is_gil_enabled", lambda: True)()
    )


class CodecPipeline:
    """Encodes a chunk-shaped ndarray to bytes and back; immutable once built."""

    __slots__ = ("_bare_shard", "_chain", "_decoders", "_encoders", "_into", "_meta", "_plain", "_shard_into",
                 "_stored_dtype", "_stored_nbytes", "chunk_shape", "dtype", "light", "nbytes")  # fmt: skip
    chunk_shape: tuple[int, ...]
    dtype: np.dtype
    #: The size of a decoded chunk in bytes.
    nbytes: int
    #: Whether chunks are quick to decode: one thread reads them fastest on memory and local disk.
    light: bool

    def __init__(self, meta: ArrayMetadata) -> None:
        chain = build_v3(meta, CodecPipeline) if meta.zarr_format == 3 else build_v2(meta)
        nbytes = int(np.prod(meta.chunks, dtype=np.int64)) * meta.dtype.itemsize
        _probe(chain, nbytes)
        # a shard and nothing around it: stored as the sharding codec's parts, decoded by it in place
        bare_shard = chain.sharding if not chain.bytes_codecs and not chain.array_stages else None
        fields = {
            "chunk_shape": meta.chunks, "dtype": meta.dtype, "nbytes": nbytes, "light": _light(chain, nbytes),
            "_meta": meta, "_chain": chain, "_encoders": chain.bytes_codecs,
            # decoding in C order with no array codec is the bytes codecs, innermost first, and a reshape
            "_plain": chain.plain,
            "_decoders": _decoders(chain),
            "_stored_dtype": chain.stored_dtype,
            "_stored_nbytes": int(np.prod(meta.chunks, dtype=np.int64)) * chain.stored_dtype.itemsize,
            # one blosc or zstd codec and nothing else to do: decode straight into the caller's buffer
            "_into": into_decoder(chain.bytes_codecs[0], nbytes)
            if chain.plain and chain.stored_dtype == meta.dtype and len(chain.bytes_codecs) == 1 else None,
            "_bare_shard": bare_shard,
            # its inner chunks decode into their places in the caller's array
            "_shard_into": bare_shard if chain.stored_dtype == meta.dtype else None,
        }  # fmt: skip
        for name, value in fields.items():
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"a CodecPipeline is immutable: cannot set {name!r}")

    def __reduce__(self) -> tuple[Any, ...]:
        return CodecPipeline, (self._meta,)  # pickled and copied as its metadata, built again

    @property
    def sharding(self) -> ShardingCodec | None:
        """The ``sharding_indexed`` codec, when chunks are shards of inner chunks."""
        return self._chain.sharding  # type: ignore[no-any-return]

    @property
    def array_stages(self) -> tuple[ArrayArrayCodec, ...]:
        """The v3 array -> array codecs in order: transposes and ``numcodecs.*`` element-wise codecs."""
        return self._chain.array_stages

    @property
    def bytes_codecs(self) -> tuple[Codec, ...]:
        """The numcodecs bytes codecs (v3 bytes -> bytes, v2 the compressor), in encode order."""
        return self._encoders

    def encode(self, chunk: np.ndarray) -> bytes | memoryview:
        """Encode a chunk of exactly ``chunk_shape``."""
        data = self._chain.encode(chunk)
        for codec in self._encoders:
            data = codec.encode(data)
        if isinstance(data, np.ndarray):
            return memoryview(ensure_contiguous_ndarray(data)).cast("B")
        return data  # type: ignore[no-any-return]

    def encode_parts(self, chunk: np.ndarray) -> bytes | memoryview | list[bytes | memoryview]:
        """:meth:`encode`'s bytes, as a list of buffers to be stored one after another where that saves
        joining them (a shard's index and inner chunks as encoded, when nothing encodes the shard
        further), else as the one buffer :meth:`encode` gives."""
        if self._bare_shard is None:
            return self.encode(chunk)
        return self._bare_shard.encode_parts(np.asarray(chunk, dtype=self._stored_dtype))

    @property
    def decodes_into(self) -> bool:
        """Whether :meth:`decode_into` can decode chunks straight into a caller's buffer."""
        return self._into is not None or self._shard_into is not None

    def takes(self, out: np.ndarray) -> bool:
        """Whether :meth:`decode_into` can decode a chunk into ``out`` (of the array's dtype): a
        C-contiguous buffer of :attr:`nbytes` bytes, or for a shard any array of ``chunk_shape``."""
        if self._shard_into is not None:
            return out.shape == self.chunk_shape
        return self._into is not None and out.nbytes == self.nbytes and out.flags.c_contiguous

    def decode_into(self, data: bytes | memoryview, out: np.ndarray) -> bool:
        """Decode stored bytes straight into ``out``, an array :meth:`takes`, when the codecs allow
        (see :attr:`decodes_into`); ``False``: nothing was written, :meth:`decode` it instead (it also
        refuses what cannot be a chunk). A shard that fails to decode may have written part of ``out``."""
        if self._shard_into is not None:
            self._shard_into.decode_into(data, out)
            return True
        into = self._into
        return into is not None and into(data, out)

    def decode(self, data: bytes | memoryview) -> np.ndarray:
        """Decode stored bytes into a chunk of ``chunk_shape`` and the array's dtype."""
        buf: Any = data
        for decode in self._decoders:
            buf = decode(buf)
        if not self._plain:
            return self._chain.decode(buf)
        # the common case, once per chunk read: as few steps as possible
        out = raw_chunk(buf, self._stored_nbytes, self.chunk_shape).view(self._stored_dtype).reshape(self.chunk_shape)
        return out if out.dtype == self.dtype else out.astype(self.dtype)
