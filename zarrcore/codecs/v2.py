"""The Zarr v2 codec chain: the ``filters`` then the ``compressor``, each any codec numcodecs knows,
over the chunk's bytes in the array's ``order``."""

from __future__ import annotations

from typing import Any

import numpy as np
from numcodecs.abc import Codec
from numcodecs.compat import ensure_contiguous_ndarray

from zarrcore.codecs.base import VLEN_CODECS, Chain, build_numcodec, check_vlen_count, located, objects
from zarrcore.codecs.bounded import outer_limit
from zarrcore.errors import CodecError
from zarrcore.metadata.model import ArrayMetadata

__all__ = ["V2Chain", "build_v2"]


class V2Chain(Chain):
    """A built v2 chain: the chunk in ``order``, the filters, then the compressor (the bytes codec)."""

    def __init__(self, meta: ArrayMetadata, filters: tuple[Codec, ...], compressor: Codec | None) -> None:
        super().__init__(meta.chunks, meta.dtype, meta.dtype, (compressor,) if compressor is not None else ())
        self.filters = filters
        self.order = meta.order
        self._count = int(np.prod(meta.chunks, dtype=np.int64))
        self._nbytes = self._count * meta.dtype.itemsize

    def encode(self, chunk: np.ndarray) -> Any:
        data = np.asarray(chunk, dtype=self.stored_dtype, order=self.order)
        if self.order == "F":
            data = data.T  # same memory, C-contiguous view in F order for the codecs
        for f in self.filters:
            data = f.encode(data)
        return data

    def decode(self, data: Any) -> np.ndarray:
        for f in reversed(self.filters):
            if f.codec_id in VLEN_CODECS:
                check_vlen_count(data, self._count)
            data = f.decode(data)
        if self.dtype.kind == "O":
            return objects(data, self.chunk_shape, self.chunk_shape, self.order)
        flat = ensure_contiguous_ndarray(data).view(np.uint8)
        if flat.nbytes != self._nbytes:
            raise CodecError(
                f"decoded chunk has {flat.nbytes} bytes, expected {self._nbytes} for chunk shape {self.chunk_shape}"
            )
        out = flat.view(self.stored_dtype).reshape(self.chunk_shape, order=self.order)
        return out if out.dtype == self.dtype else out.astype(self.dtype)

    def checked(self) -> list[tuple[str, Codec]]:
        labels = [f"filters[{i}]" for i in range(len(self.filters))] + ["compressor"] * len(self.bytes_codecs)
        return list(zip(labels, [*self.filters, *self.bytes_codecs], strict=True))

    @property
    def simple(self) -> bool:
        return not self.filters

    @property
    def plain(self) -> bool:  # strings always have a filter (build_v2 refuses them without vlen-utf8)
        return not self.filters and self.order == "C"

    def decoded_limit(self) -> tuple[int | None, bool]:
        if self.dtype.kind == "O":
            return None, False
        if not self.filters:
            return self._nbytes, True
        # filters may widen the elements (fixedscaleoffset's astype), to 8 bytes at most
        return outer_limit(max(self._nbytes, 8 * self._count)), False


def build_v2(meta: ArrayMetadata) -> V2Chain:
    """The chain of ``meta.filters`` and ``meta.compressor``."""
    filters = []
    for i, config in enumerate(meta.filters or ()):
        with located(f"filters[{i}]"):
            filters.append(build_numcodec(config))
    compressor = None
    if meta.compressor:
        with located("compressor"):
            compressor = build_numcodec(meta.compressor)
    if meta.dtype.kind == "O" and not any(f.codec_id == "vlen-utf8" for f in filters):
        raise CodecError("filters: variable-length strings (dtype '|O') need a {'id': 'vlen-utf8'} filter")
    return V2Chain(meta, tuple(filters), compressor)
