"""The inputs of a dataset write: variables, the pieces that sources contribute, and source identity.

Values are *encoded*, exactly as stored in the source files: packed integers stay packed with their
``scale_factor``/``add_offset``/``_FillValue`` attributes, times stay numbers with ``units`` and
``calendar``; xarray then decodes what is written exactly as it decodes the files.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from zarrcore.errors import LayoutMismatchError

__all__ = ["ArrayLike", "Piece", "SourceId", "Variable", "plain_attrs"]


class ArrayLike(Protocol):
    """A numpy array, or a lazy array with ``shape``, ``dtype`` and numpy basic slicing."""

    shape: tuple[int, ...]
    dtype: Any

    def __getitem__(self, key: Any) -> Any: ...


@dataclass(frozen=True)
class SourceId:
    """What identifies a source file in the ledger: ``url`` is its key; ``size``, ``version`` (ETag,
    generation or mtime) and ``content_hash`` tell whether it changed since it landed."""

    url: str
    size: int | None = None
    version: str | None = None
    content_hash: str | None = None

    @property
    def key(self) -> str:
        return self.url

    @property
    def fingerprint(self) -> str:
        """What the content is: the content hash when known, else the size and version."""
        return self.content_hash if self.content_hash is not None else f"{self.size}:{self.version}"

    def to_json(self) -> dict[str, Any]:
        return {"url": self.url, "size": self.size, "version": self.version, "content_hash": self.content_hash}

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> SourceId:
        return cls(doc["url"], doc.get("size"), doc.get("version"), doc.get("content_hash"))

    def differs_from(self, landed: SourceId) -> list[str]:
        """The identity fields known on both sides that differ (the content hash decides when both have one)."""
        if self.content_hash is not None and landed.content_hash is not None:
            return ["content_hash"] if self.content_hash != landed.content_hash else []
        fields = ("size", "version")
        return [f for f in fields if None not in (getattr(self, f), getattr(landed, f))
                and getattr(self, f) != getattr(landed, f)]  # fmt: skip


@dataclass(frozen=True)
class Variable:
    """One variable of a piece: its dims, its encoded data and its attributes (CF encoding included).

    ``fill_value`` is the Zarr fill value to use; by default it follows xarray's convention (the
    ``_FillValue`` attribute, else NaN for floats, else the Zarr default)."""

    dims: tuple[str, ...]
    data: Any
    attrs: dict[str, Any] = field(default_factory=dict)
    fill_value: Any = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "dims", tuple(self.dims))
        if len(self.dims) != len(self.shape):
            raise LayoutMismatchError(f"dims {self.dims} do not match the data's rank {len(self.shape)}")

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(int(n) for n in self.data.shape)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.data.dtype)

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize

    def read(self, selection: tuple[slice, ...] = ()) -> np.ndarray:
        """The values of ``selection`` (all of them by default), read from the data."""
        return np.asarray(self.data[selection] if selection else self.data[...], dtype=self.dtype)


@dataclass(frozen=True)
class Piece:
    """What one source contributes: its variables (coordinates included), global attributes and
    identity. A piece without ``source`` can be written but is never recorded in the ledger."""

    variables: dict[str, Variable]
    attrs: dict[str, Any] = field(default_factory=dict)
    source: SourceId | None = None

    @property
    def name(self) -> str:
        """How messages name the piece."""
        return self.source.url if self.source is not None else "<piece without source>"

    def sizes(self) -> dict[str, int]:
        """Each dimension's length in this piece (a dimension with two lengths is refused)."""
        out: dict[str, int] = {}
        for vname, var in self.variables.items():
            for dim, n in zip(var.dims, var.shape, strict=True):
                if out.setdefault(dim, n) != n:
                    raise LayoutMismatchError(
                        f"{self.name}: variable {vname!r} has {dim}={n}, another variable has {dim}={out[dim]}",
                        variable=vname, source=self.name,
                    )  # fmt: skip
        return out


def plain_attrs(attrs: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Attributes as JSON values (numpy scalars and arrays become Python numbers and lists)."""
    return {str(k): _plain(v, f"{where}: attribute {k!r}") for k, v in attrs.items()}


def _plain(value: Any, where: str) -> Any:
    if isinstance(value, np.ndarray):
        return [_plain(v, where) for v in value.tolist()] if value.ndim else _plain(value[()], where)
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, float) and not math.isfinite(value):
        raise LayoutMismatchError(f"{where}: {value} cannot be stored as a JSON attribute")
    if isinstance(value, list | tuple):
        return [_plain(v, where) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v, where) for k, v in value.items()}
    return value
