"""Source files on any store: where a file URL lives, globs over local disk and buckets, and each file's
identity (size, version, content hash), all through zarrcore's stores.

Glob rules (:func:`list_sources`), applied to ``/``-separated keys, case-sensitive:

* ``*`` matches any run of characters inside one path segment (never a ``/``); ``?`` one such character;
  ``[abc]``, ``[a-z]``, ``[!abc]`` one character of (or not of) a set, as :func:`fnmatch.fnmatchcase`;
* ``**`` as a whole segment matches zero or more segments (``raw/**/*.nc`` finds ``raw/a.nc`` and
  ``raw/2001/01/a.nc``);
* names starting with ``.`` are matched like any other; there is no brace expansion;
* the segments before the first one holding ``*``, ``?`` or ``[`` are the fixed prefix: only keys under it
  are listed (one recursive listing through the store), then matched segment by segment;
* a folder or prefix holding ``zarr.json`` or ``.zgroup`` (a Zarr group) matches as one source, by its own
  path (``raw/*.zarr`` finds ``raw/a.zarr``); the objects inside it are not listed as files.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
from dataclasses import asdict, dataclass
from typing import Any

from flows.stores import StoreRef
from zarrcore.errors import NotFound
from zarrcore.storage import RangeRequest, Store, check_url

__all__ = ["FileIdentity", "SourceLocation", "locate", "list_sources", "file_identity", "content_hash", "HASH_BLOCK",
           "ZARR_ROOTS"]  # fmt: skip

#: Bytes read per request while hashing a file: memory stays bounded whatever the file's size.
HASH_BLOCK = 8 << 20
_GLOB_CHARS = frozenset("*?[")
#: The documents that make a folder or prefix a Zarr group (v3, v2).
ZARR_ROOTS = ("zarr.json", ".zgroup")


@dataclass(frozen=True, slots=True)
class SourceLocation:
    """A file URL taken apart: the store holding it (URL and options) and the file's key in that store."""

    url: str
    store: StoreRef
    key: str
    local_path: str | None = None  # set for files on local disk


def _local(path: str, file_url: bool) -> tuple[str, str]:
    """A local path as ``(absolute path, url)``; the URL keeps the caller's form (path or file://)."""
    path = os.path.abspath(os.path.expanduser(path))
    return path, ("file://" + path if file_url else path)


def locate(url: str, storage_options: dict[str, Any] | None = None) -> SourceLocation:
    """Where the file at ``url`` (a path, ``file://``, ``memory://name/...``, ``s3://``, ``gs://``, ``az://``)
    is: its folder's store for local files, the named store for ``memory://``, the bucket for object stores.
    Raises :class:`~zarrcore.errors.InvalidURL` (credentials, queries and unknown schemes are refused)."""
    parsed = check_url(url)
    options = dict(storage_options or {})
    if parsed.scheme == "file":  # the path taken literally: '?' and '#' are glob or name characters here
        is_url = url[:7].lower() == "file://"
        path, clean = _local(url[7:] if is_url else url, is_url)
        folder, name = os.path.split(path)
        return SourceLocation(clean, StoreRef.of(folder, options), name, local_path=path)
    if parsed.scheme == "memory":
        name, _, key = parsed.path.partition("/")
        return SourceLocation(f"memory://{parsed.path}", StoreRef.of(f"memory://{name}", options), key)
    return SourceLocation(f"{parsed.root_url}/{parsed.path}", StoreRef.of(parsed.root_url, options), parsed.path)


def _split_pattern(segments: list[str]) -> int:
    """How many leading segments hold no glob character."""
    for i, seg in enumerate(segments):
        if _GLOB_CHARS & set(seg):
            return i
    return len(segments)


def _match(pattern: list[str], key: list[str]) -> bool:
    """Segment-wise glob match, ``**`` standing for zero or more segments."""
    if not pattern:
        return not key
    head = pattern[0]
    if head == "**":
        return any(_match(pattern[1:], key[i:]) for i in range(len(key) + 1))
    return bool(key) and fnmatch.fnmatchcase(key[0], head) and _match(pattern[1:], key[1:])


def list_sources(pattern: str, storage_options: dict[str, Any] | None = None) -> list[str]:
    """The URLs of the files matching ``pattern`` (rules in the module docstring), sorted. The pattern
    is a path or a store URL (``/data/raw/*.nc``, ``s3://bucket/raw/**/*.nc``); the URLs returned have the
    same form. A pattern without glob characters lists that one file if it exists."""
    here = locate(pattern, storage_options)
    if here.local_path is not None:  # local: the folder of the fixed part is the store
        segments = here.local_path.strip("/").split("/")
        fixed = _split_pattern(segments)
        root = "/" + "/".join(segments[:fixed])
        if fixed == len(segments):
            is_group = any(os.path.isfile(os.path.join(root, n)) for n in ZARR_ROOTS)
            return [here.url] if os.path.isfile(root) or is_group else []
        store = here.store.at(root).open()
        prefix, base = "", here.url[: len(here.url) - len(here.local_path)] + root.rstrip("/") + "/"
    else:
        segments = here.key.split("/")
        fixed = _split_pattern(segments)
        store = here.store.open()
        prefix, base = "/".join(segments[:fixed]), here.url[: len(here.url) - len(here.key)]
        if fixed == len(segments):
            found = prefix and any(store.exists(k) for k in (prefix, *(f"{prefix}/{n}" for n in ZARR_ROOTS)))
            return [here.url] if found else []
        prefix = prefix + "/" if prefix else ""
    rest = segments[fixed:]
    keys = [key[len(prefix) :].split("/") for key in store.list(prefix)]
    groups = {"/".join(k[:-1]) for k in keys if len(k) > 1 and k[-1] in ZARR_ROOTS and _match(rest, k[:-1])}
    groups = {g for g in groups if not any(g.startswith(h + "/") for h in groups)}  # arrays inside a group
    inside = tuple(g + "/" for g in groups)
    files = {"/".join(k) for k in keys if _match(rest, k) and not "/".join(k).startswith(inside)}
    return sorted(base + prefix + key for key in files | groups)


@dataclass(frozen=True, slots=True)
class FileIdentity:
    """What a source file is: its URL (never with credentials), size, the store's version of it (ETag,
    generation or the local file's identity; ``None`` where the store keeps none), its modification time
    in ns on local disk, and the SHA-256 of its bytes (``None`` when not computed). A changed file
    changes ``sha256``; ``size``/``version``/``mtime_ns`` are the cheap checks that usually tell first."""

    url: str
    size: int
    version: str | None
    mtime_ns: int | None
    sha256: str | None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form (for a ledger)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FileIdentity:
        return cls(**data)


def content_hash(store: Store, key: str, size: int, *, version: str | None = None, block: int = HASH_BLOCK) -> str:
    """SHA-256 of object ``key`` (``size`` bytes), read ``block`` bytes per request; given ``version``,
    every read is pinned to it (:class:`~zarrcore.errors.PreconditionFailed` if the object changed)."""
    digest = hashlib.sha256()
    for start in range(0, size, block):
        data, _ = store.get_versioned(key, RangeRequest(start, min(start + block, size)), version=version)
        digest.update(data)
    return digest.hexdigest()


def file_identity(
    url: str, storage_options: dict[str, Any] | None = None, *, with_hash: bool = True, version: str | None = None
) -> FileIdentity:
    """The :class:`FileIdentity` of the file at ``url``, its hash streamed through the store in bounded
    blocks (``with_hash=False`` skips it). Given ``version``, the file must still be that version.
    Raises :class:`~zarrcore.errors.NotFound` for a missing file."""
    here = locate(url, storage_options)
    store = here.store.open()
    mtime_ns = None
    if here.local_path is not None:
        try:
            st = os.stat(here.local_path)
        except FileNotFoundError:
            raise NotFound(f"no source file {here.url!r}", key=here.key, store=store.url) from None
        mtime_ns = st.st_mtime_ns
    size = store.size(here.key)
    _, current = store.get_versioned(here.key, RangeRequest(0, min(size, 1)), version=version)
    current = current if version is None else version
    digest = content_hash(store, here.key, size, version=current) if with_hash else None
    return FileIdentity(here.url, size, current, mtime_ns, digest)
