"""The v3 codecs used when none are given, and user codec arguments read as lists of codec objects."""

from __future__ import annotations

from typing import Any

import numpy as np

from zarrcore.errors import CodecError
from zarrcore.metadata.dtypes import needs_endian

__all__ = ["codec_configs", "default_codecs"]


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
