"""What ``zarrflow`` makes of its arguments, before Prefect is imported: the shorthands (``synthetic:SHAPE``,
``256,256``, ``time=24``, ``NAME=VALUE``), local paths made absolute (a run's parameters mean the same
from any folder, so its retry can be started anywhere), and the refusals that need no flow run: each a
:class:`UsageError` whose message names the argument and the value at fault.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from zarrcore.errors import InvalidURL
from zarrcore.storage import check_url, registered_schemes

__all__ = ["UsageError", "parse_source", "ints", "sizes", "options", "attributes", "store_url", "local_file",
           "absolute_source"]  # fmt: skip

#: Suffixes of the file sources that ``parse_source`` recognises.
TABLE_SUFFIXES = (".parquet", ".pq", ".arrow", ".feather", ".ipc")


class UsageError(ValueError):
    """A command line ``zarrflow`` refuses before any flow run exists (exit status 2)."""


def ints(text: str | None, what: str) -> list[int] | None:
    """``256,256`` (or ``256x256``) as ``[256, 256]``; signs are kept for the parameter check to judge."""
    if not text:
        return None
    parts = text.replace("x", ",").split(",")
    try:
        return [int(p) for p in parts]
    except ValueError:
        raise UsageError(f"{what} expects integers separated by commas (e.g. 256,256), got {text!r}") from None


def sizes(text: str | None, what: str) -> dict[str, int] | None:
    """``time=24,lat=256`` as ``{"time": 24, "lat": 256}``."""
    if not text:
        return None
    out = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        try:
            size = int(value)
        except ValueError:
            size = None
        if not sep or not name.strip() or size is None:
            raise UsageError(f"{what} expects DIM=N,DIM=N (e.g. time=24,lat=256), got {text!r}")
        out[name.strip()] = size
    return out


def options(pairs: Sequence[str] | None, what: str = "--option") -> dict[str, Any]:
    """``NAME=VALUE`` pairs as a dict; a value that parses as JSON is taken as JSON."""
    out: dict[str, Any] = {}
    for pair in pairs or ():
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise UsageError(f"{what} expects NAME=VALUE, got {pair!r}")
        try:
            out[name] = json.loads(value)
        except json.JSONDecodeError:
            out[name] = value
    return out


def attributes(text: str | None) -> dict[str, Any] | None:
    """``--attributes``: a JSON object."""
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"--attributes expects a JSON object ({exc.msg} at character {exc.pos}), got {text!r}"
        ) from None
    if not isinstance(value, dict):
        raise UsageError(f"--attributes expects a JSON object, got {text!r}")
    return value


def store_url(text: str, what: str) -> str:
    """A store URL of the command line, checked and, when local, made absolute.

    ``memory://`` is refused: the store lives in one process, so nothing written there outlives the run.
    A URL the stores refuse (unknown scheme, credentials, a query) is refused naming the part at fault.
    """
    if not text.strip():
        raise UsageError(f"{what} is empty; give a path or an s3://, gs:// or az:// URL")
    try:
        parsed = check_url(text)
    except InvalidURL as exc:
        schemes = ", ".join(f"{s}://" for s in registered_schemes() if s != "memory")
        detail = f"unknown URL scheme (use a path or {schemes})" if exc.part == "scheme" else str(exc)
        raise UsageError(f"{what} {_shown(text, exc.part)}: {detail}") from None
    if parsed.scheme == "memory":
        raise UsageError(f"{what} {text!r}: a memory:// store vanishes when the process ends; give a path or an "
                         "s3://, gs:// or az:// URL")  # fmt: skip
    if parsed.scheme == "file":
        return str(Path(parsed.path).expanduser().absolute())
    return text


def _shown(text: str, part: str | None) -> str:
    """The URL in a message, unless the refused part may hold a secret (credentials, a query)."""
    return "(not shown: it may hold a secret)" if part in ("credentials", "query", "fragment", "bucket") else repr(text)


def local_file(text: str, what: str) -> str:
    """A local source file, made absolute; refused when it does not exist."""
    path = Path(text).expanduser().absolute()
    if not path.exists():
        raise UsageError(f"{what} {text!r}: no such file ({path})")
    return str(path)


def parse_source(text: str, *, key: str | None = None, columns: str | None = None, table_layout: str = "matrix",
                 source_path: str = "") -> dict[str, Any]:  # fmt: skip
    """A source parameter object from the command line's shorthand (local paths absolute and checked)."""
    if text.lstrip().startswith("{"):
        try:
            spec = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UsageError(f"source: not a JSON object ({exc.msg} at character {exc.pos})") from None
        if not isinstance(spec, dict):
            raise UsageError("source: expected a JSON object")
        return absolute_source(spec)
    if text.startswith("synthetic:"):
        return _synthetic(text)
    lower = text.lower()
    if lower.endswith(".npy"):
        return {"kind": "npy", "path": local_file(text, "source")}
    if lower.endswith(".npz"):
        if not key:
            raise UsageError(f"source {text!r}: an .npz source needs --key NAME (the array inside the archive)")
        return {"kind": "npz", "path": local_file(text, "source"), "key": key}
    if lower.endswith(TABLE_SUFFIXES):
        spec = {"kind": "parquet", "path": local_file(text, "source"), "layout": table_layout}
        if columns:
            spec["columns"] = columns.split(",")
        return spec
    return {"kind": "zarr", "url": store_url(text, "source"), "path": source_path}


def _synthetic(text: str) -> dict[str, Any]:
    form = "synthetic:SHAPE[:DTYPE[:SEED]], e.g. synthetic:4096x4096:float32:7"
    parts = text.split(":")[1:]
    if len(parts) > 3:
        raise UsageError(f"source {text!r}: expected {form}")
    try:
        shape = [int(n) for n in parts[0].lower().split("x")]
    except ValueError:
        raise UsageError(f"source {text!r}: the shape {parts[0]!r} is not integers joined by 'x' ({form})") from None
    spec: dict[str, Any] = {"kind": "synthetic", "shape": shape}
    if len(parts) > 1 and parts[1]:
        spec["dtype"] = parts[1]
    if len(parts) > 2 and parts[2]:
        try:
            spec["seed"] = int(parts[2])
        except ValueError:
            raise UsageError(f"source {text!r}: the seed {parts[2]!r} is not an integer ({form})") from None
    return spec


def absolute_source(spec: dict[str, Any]) -> dict[str, Any]:
    """A JSON source object with its local ``path`` (file kinds) or ``url`` (Zarr, NetCDF) made absolute."""
    out = dict(spec)
    if isinstance(out.get("url"), str):
        out["url"] = store_url(out["url"], "source url")
    if out.get("kind") in ("npy", "npz", "parquet") and isinstance(out.get("path"), str):
        out["path"] = local_file(out["path"], "source path")
    return out
