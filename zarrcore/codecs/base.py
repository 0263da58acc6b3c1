"""What every codec chain is made of: the three typed codec bases, the built chain, and the helpers
that check configurations and name a failing codec.

A v3 codec list is ``array -> array`` codecs, one ``array -> bytes`` codec, then ``bytes -> bytes``
codecs; a v2 array has ``filters`` then a ``compressor``. Either is built into a :class:`Chain`: the
part before the bytes codecs (array codecs and serializer, or filters) and the numcodecs bytes codecs
that :class:`~zarrcore.codecs.pipeline.CodecPipeline` runs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numcodecs
import numpy as np
from numcodecs.abc import Codec
from numcodecs.compat import ensure_contiguous_ndarray

from zarrcore.codecs.zstd import Zstd
from zarrcore.errors import CodecError
from zarrcore.metadata.model import ArrayMetadata

__all__ = [
    "Adapter", "ArrayArrayCodec", "ArrayBytesCodec", "BytesBytesCodec", "Chain", "Context", "Stage",
    "VLEN_CODECS", "build_numcodec", "check_keys", "check_vlen_count", "located", "objects", "raw_chunk",
]  # fmt: skip

#: Where a v3 codec list is: before the array -> bytes codec, or after it.
Stage = Literal["array", "bytes"]


@contextmanager
def located(where: str) -> Iterator[None]:
    """Prefix a :class:`CodecError` raised inside with where it happened (``codecs[2] ('zstd'): ...``)."""
    try:
        yield
    except CodecError as exc:
        raise CodecError(f"{where}: {exc}") from None


def check_keys(config: dict[str, Any], allowed: set[str] | frozenset[str]) -> None:
    """Refuse configuration keys a codec does not know."""
    unknown = set(config) - allowed
    if unknown:
        raise CodecError(f"unknown configuration keys {sorted(unknown)}")


def build_numcodec(config: dict[str, Any]) -> Codec:
    """The numcodecs codec of a ``{"id": ..., **settings}`` config."""
    try:
        if config.get("id") == "zstd":  # the same codec, encoding on a reused context
            return Zstd(**{k: v for k, v in config.items() if k != "id"})
        return numcodecs.get_codec(dict(config))
    except Exception as exc:  # numcodecs raises ValueError, TypeError, KeyError...
        raise CodecError(f"cannot build codec {config!r}: {exc}") from None


#: The numcodecs codecs whose encoding starts with the number of items, as a little-endian uint32.
VLEN_CODECS = frozenset({"vlen-utf8", "vlen-bytes", "vlen-array"})


def check_vlen_count(data: Any, count: int) -> None:
    """Refuse variable-length data that does not hold ``count`` items before numcodecs allocates room
    for as many as its header states (four hostile bytes state four billion)."""
    view = memoryview(data).cast("B")
    if len(view) < 4:
        raise CodecError(f"variable-length data of {len(view)} bytes cannot hold its 4-byte item count")
    stated = int.from_bytes(view[:4], "little")
    if stated != count:
        raise CodecError(f"variable-length data states {stated} items, expected {count}")


def objects(flat: Any, shape: tuple[int, ...], chunk_shape: tuple[int, ...], order: str = "C") -> np.ndarray:
    """Decoded variable-length strings (a flat object array) as an array of ``shape``."""
    count = int(np.prod(shape, dtype=np.int64))
    if not isinstance(flat, np.ndarray) or flat.dtype.kind != "O" or flat.size != count:
        size = getattr(flat, "size", "?")
        raise CodecError(f"decoded chunk has {size} strings, expected {count} for chunk shape {chunk_shape}")
    return flat.reshape(shape, order=order)  # type: ignore[call-overload,no-any-return]


def raw_chunk(buf: Any, expected: int, chunk_shape: tuple[int, ...]) -> np.ndarray:
    """Decoded bytes as a flat uint8 array of ``expected`` bytes (a chunk of ``chunk_shape``)."""
    try:
        flat = np.frombuffer(buf, dtype=np.uint8)
    except (TypeError, ValueError, BufferError):  # not a contiguous buffer
        flat = ensure_contiguous_ndarray(buf).view(np.uint8)
    if flat.nbytes != expected:
        raise CodecError(f"decoded chunk has {flat.nbytes} bytes, expected {expected} for chunk shape {chunk_shape}")
    return flat


class ArrayArrayCodec(ABC):
    """A codec from an array to an array of as many elements (another axis order or dtype)."""

    @abstractmethod
    def encode(self, chunk: np.ndarray) -> np.ndarray: ...

    @abstractmethod
    def decode(self, chunk: np.ndarray) -> np.ndarray: ...

    def encoded_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """The shape :meth:`encode` makes of an array of ``shape``."""
        return shape

    def encoded_dtype(self, dtype: np.dtype) -> np.dtype:
        """The dtype :meth:`encode` makes of an array of ``dtype``."""
        return dtype


class ArrayBytesCodec(ABC):
    """The codec from an array (in the stored axis order) to bytes: ``bytes``, ``vlen-utf8`` or a shard."""

    #: The dtype the array is converted to before :meth:`encode`.
    stored_dtype: np.dtype

    @abstractmethod
    def encode(self, chunk: np.ndarray) -> Any: ...

    @abstractmethod
    def decode(self, data: Any, shape: tuple[int, ...]) -> np.ndarray:
        """An array of ``shape`` (the stored axis order) from the bytes :meth:`encode` made."""


class BytesBytesCodec(ABC):
    """A codec from bytes to bytes, run by numcodecs (:attr:`codec`)."""

    codec: Codec


class Chain(ABC):
    """A built codec chain: :meth:`encode` and :meth:`decode` run everything up to the bytes codecs."""

    #: The v3 array -> array codecs, in order (none in v2).
    array_stages: tuple[ArrayArrayCodec, ...] = ()
    #: The ``sharding_indexed`` codec, when chunks are shards of inner chunks.
    sharding: Any = None

    def __init__(self, chunk_shape: tuple[int, ...], dtype: np.dtype, stored_dtype: np.dtype,
                 bytes_codecs: tuple[Codec, ...]) -> None:  # fmt: skip
        self.chunk_shape = chunk_shape
        self.dtype = dtype
        #: The dtype of the elements the serializer (v3) or the filters (v2) receive.
        self.stored_dtype = stored_dtype
        self.bytes_codecs = bytes_codecs

    @abstractmethod
    def encode(self, chunk: np.ndarray) -> Any:
        """A chunk of ``chunk_shape`` as the input of the first bytes codec."""

    @abstractmethod
    def decode(self, data: Any) -> np.ndarray:
        """The output of the last bytes codec's decode as a chunk of ``chunk_shape`` and ``dtype``."""

    @abstractmethod
    def checked(self) -> list[tuple[str, Codec]]:
        """The numcodecs codecs to try on a few zeros, each with its name for errors, in encode order."""

    def probe_input(self, n: int) -> Any:
        """``n`` zeros (empty strings) as the first checked codec receives them."""
        return np.array([""] * n, dtype=object) if self.dtype.kind == "O" else np.zeros(n, self.stored_dtype)

    @property
    def plain(self) -> bool:
        """Whether decoding is the bytes codecs then one reshape (C order, no array codec, no shard)."""
        return False

    def decoded_limit(self) -> tuple[int | None, bool]:
        """The most bytes the first bytes codec's decode may give (``None``: no bound, as for
        variable-length strings), and whether it must give exactly that many."""
        return None, False

    @property
    def simple(self) -> bool:
        """Whether nothing but the bytes codecs and transposes costs time: no filter, element-wise
        codec, string codec or shard."""
        return False


@dataclass(frozen=True)
class Context:
    """What a codec is built against: the array's metadata and what the codecs before it made."""

    meta: ArrayMetadata
    #: The dtype the array -> array codecs so far hand on (what ``bytes`` will serialise).
    array_dtype: np.dtype
    #: The chunk shape in the axis order the array -> array codecs so far hand on.
    stored_shape: tuple[int, ...]
    #: Whether an element-wise ``numcodecs.*`` codec is among the array -> array codecs so far.
    element_wise: bool
    #: Builds the pipeline of other metadata (a shard's inner chunks and index).
    build: Callable[[ArrayMetadata], Any]


class Adapter(ABC):
    """A v3 codec name's adapter: its place in the list and how to build it from its configuration."""

    #: ``array -> array`` (before the serializer), ``array -> bytes`` (the serializer) or ``bytes -> bytes``.
    kind: ClassVar[Literal["array->array", "array->bytes", "bytes->bytes"]]
    #: The configuration keys it accepts (``None``: checked by numcodecs).
    keys: ClassVar[frozenset[str] | None] = frozenset()

    def misplaced(self, stage: Stage) -> str | None:
        """Why this codec cannot stand here (``stage``: before or after the serializer), if it cannot."""
        if self.kind == "array->array" and stage != "array":
            return "array->array codecs must come before the 'bytes' codec"
        if self.kind == "array->bytes" and stage != "array":
            return "only one array->bytes codec is allowed"
        if self.kind == "bytes->bytes" and stage != "bytes":
            return "bytes->bytes codecs must come after the 'bytes' codec"
        return None

    def build(self, config: dict[str, Any], ctx: Context) -> Any:
        """The codec, once it is known to suit the array and its configuration keys are checked."""
        refused = self.refuse(ctx)
        if refused:
            raise CodecError(refused)
        if self.keys is not None:
            check_keys(config, self.keys)
        return self.make(config, ctx)

    def refuse(self, ctx: Context) -> str | None:
        """Why this codec cannot encode this array, if it cannot."""
        return None

    @abstractmethod
    def make(self, config: dict[str, Any], ctx: Context) -> Any: ...
