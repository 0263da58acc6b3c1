"""Deterministic synthetic data: each value a function of its global index and a seed (demo, benchmarks)."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from typing import Annotated, Literal

import numpy as np
from pydantic import Field, field_validator

from flows.sources.base import Region, SourceError, SourceModel, SourceReader, region_key

__all__ = ["SyntheticSource"]


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """A well-mixed 64-bit hash of each element (wrapping uint64 arithmetic)."""
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


#: Elements computed at once by the synthetic source: its 64-bit temporaries stay near 1 MiB each.
_BLOCK = 1 << 16


def _blocks(region: Region, limit: int) -> Iterator[Region]:
    """Split ``region`` into sub-regions of at most ``limit`` elements (rows of the leading dimensions)."""
    if not region:
        yield region
        return
    head, rest = region[0], region[1:]
    inner = math.prod(s.stop - s.start for s in rest)
    if inner <= limit:
        step = max(1, limit // max(inner, 1))
        for start in range(head.start, head.stop, step):
            yield (slice(start, min(start + step, head.stop)), *rest)
        return
    for i in range(head.start, head.stop):
        for part in _blocks(rest, limit):
            yield (slice(i, i + 1), *part)


class _SyntheticReader(SourceReader):
    def __init__(self, spec: SyntheticSource) -> None:
        self._spec = spec
        self.shape = tuple(spec.shape)
        self.dtype = np.dtype(spec.dtype)
        self.chunks = tuple(spec.chunks) if spec.chunks else None
        self._token = hashlib.sha256(spec.model_dump_json().encode()).hexdigest()

    def read(self, region: Region) -> np.ndarray:
        """The values of ``region``, computed a block of at most ``_BLOCK`` elements at a time in the
        target dtype, so a chunk needs only a few MiB of temporaries whatever its size."""
        shape = tuple(s.stop - s.start for s in region)
        if math.prod(shape) <= _BLOCK:
            return self._compute(region)
        out = np.empty(shape, dtype=self.dtype)
        for part in _blocks(region, _BLOCK):
            out[tuple(slice(p.start - r.start, p.stop - r.start) for p, r in zip(part, region, strict=True))] = (
                self._compute(part)
            )
        return out

    def _compute(self, region: Region) -> np.ndarray:
        """The values of a small region (each one a function of its global index and the seed only)."""
        grids = np.ogrid[tuple(slice(s.start, s.stop) for s in region)] if region else []
        strides = [math.prod(self.shape[d + 1 :]) for d in range(len(self.shape))]
        linear = np.zeros(tuple(s.stop - s.start for s in region), dtype=np.uint64)
        for g, stride in zip(grids, strides, strict=True):
            linear = linear + g.astype(np.uint64) * np.uint64(stride)
        seed = np.uint64(self._spec.seed & 0xFFFFFFFFFFFFFFFF)
        noise = _splitmix64(linear ^ _splitmix64(np.asarray(seed)))
        unit = (noise >> np.uint64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)
        if self._spec.pattern == "smooth":
            value = np.zeros(linear.shape, dtype=np.float64)
            for d, g in enumerate(grids):
                value = value + np.sin(2 * np.pi * (d + 1) * g / max(self.shape[d], 1) + self._spec.seed)
            value = value + 0.01 * unit
        else:
            value = unit
        kind = self.dtype.kind
        if kind == "b":
            return (noise & np.uint64(1)).astype(bool) if self._spec.pattern == "noise" else value > 0
        if kind in "iu":
            info = np.iinfo(self.dtype)
            if self._spec.pattern == "noise":
                span = min(int(info.max), 2**31 - 1)
                return (noise % np.uint64(span)).astype(self.dtype)
            return np.clip(np.round(value * 1000), info.min, info.max).astype(self.dtype)
        return value.astype(self.dtype)

    def fingerprint(self, region: Region) -> str:
        return hashlib.sha256(f"{self._token}:{region_key(region)}".encode()).hexdigest()

    def describe(self) -> str:
        s = self._spec
        return f"synthetic pattern={s.pattern} seed={s.seed} shape={self.shape} dtype={self.dtype}"


class SyntheticSource(SourceModel):
    """Deterministic generated data: each value is a function of its global index and a seed."""

    kind: Literal["synthetic"] = Field("synthetic", description="Source type: generated data (demo, benchmarks).")
    shape: tuple[Annotated[int, Field(ge=0)], ...] = Field(
        description="Shape of the generated array, e.g. [1000, 1000]."
    )
    dtype: str = Field("float32", description="NumPy dtype name: float32, float64, int16, uint8, bool, ...")
    seed: int = Field(0, ge=0, description="Seed: the same seed always gives the same values.")
    pattern: Literal["smooth", "noise"] = Field(
        "smooth", description="'smooth': a field of sine waves plus a little noise; 'noise': uniform noise in [0, 1)."
    )
    chunks: tuple[Annotated[int, Field(ge=1)], ...] | None = Field(
        None, description="Natural chunk shape, used when the target gives none."
    )

    @field_validator("dtype")
    @classmethod
    def _known_dtype(cls, value: str) -> str:
        try:
            dt = np.dtype(value)
        except TypeError:
            raise ValueError(f"unknown dtype {value!r}") from None
        if dt.kind not in "biuf":
            raise ValueError(f"synthetic data supports bool, integer and float dtypes, got {value!r}")
        return value

    def _reader(self) -> SourceReader:
        if self.chunks is not None and len(self.chunks) != len(self.shape):
            raise SourceError(f"synthetic source: chunks {self.chunks} do not match the rank of shape {self.shape}")
        return _SyntheticReader(self)
