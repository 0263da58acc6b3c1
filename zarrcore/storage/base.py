"""The Store protocol: a flat key/value space of bytes, addressed by ``/``-separated keys."""

from __future__ import annotations

import abc
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

from zarrcore.errors import InvalidKey

__all__ = [
    "ByteRange",
    "RangeRequest",
    "OffsetRequest",
    "SuffixRequest",
    "IOKind",
    "PutMode",
    "Store",
    "validate_key",
    "validate_prefix",
    "folder_prefix",
    "join_key",
    "slice_range",
    "range_bounds",
]


@dataclass(frozen=True, slots=True)
class RangeRequest:
    """Bytes ``[start, end)``."""

    start: int
    end: int


@dataclass(frozen=True, slots=True)
class OffsetRequest:
    """Bytes from ``offset`` to the end."""

    offset: int


@dataclass(frozen=True, slots=True)
class SuffixRequest:
    """The last ``suffix`` bytes."""

    suffix: int


ByteRange = RangeRequest | OffsetRequest | SuffixRequest
PutMode = Literal["overwrite", "create"]
#: What one chunk's I/O costs on a store: only CPU, or waiting (on a network or a disk flush).
IOKind = Literal["cpu", "latency"]


def validate_key(key: str) -> str:
    """Return ``key`` if it is a safe relative key, else raise :class:`InvalidKey`.

    Refused: empty keys, absolute keys, backslashes, NUL, empty segments and ``.``/``..`` segments,
    so that no key can address anything outside the store root.
    """
    if not isinstance(key, str) or not key:
        raise InvalidKey(f"invalid key {key!r}: keys are non-empty strings", key=str(key))
    if key.startswith("/"):
        raise InvalidKey(f"invalid key {key!r}: absolute keys are not allowed", key=key)
    if "\\" in key or "\x00" in key:
        raise InvalidKey(f"invalid key {key!r}: backslashes and NUL are not allowed", key=key)
    for seg in key.split("/"):
        if seg in ("", ".", ".."):
            raise InvalidKey(f"invalid key {key!r}: empty, '.' and '..' segments are not allowed", key=key)
    return key


def validate_prefix(prefix: str) -> str:
    """Return ``prefix`` if it is a safe listing prefix, else raise :class:`InvalidKey`.

    ``""`` lists the whole store; otherwise the rules of :func:`validate_key` hold for every whole
    segment, and the last one (a partial name, or empty after a trailing ``/``) may not be ``..``."""
    if not isinstance(prefix, str):
        raise InvalidKey(f"invalid prefix {prefix!r}: prefixes are strings", key=str(prefix))
    if not prefix:
        return prefix
    if prefix.startswith("/"):
        raise InvalidKey(f"invalid prefix {prefix!r}: absolute prefixes are not allowed", key=prefix)
    if "\\" in prefix or "\x00" in prefix:
        raise InvalidKey(f"invalid prefix {prefix!r}: backslashes and NUL are not allowed", key=prefix)
    *whole, last = prefix.split("/")
    if any(seg in ("", ".", "..") for seg in whole) or last in (".", ".."):
        raise InvalidKey(f"invalid prefix {prefix!r}: empty, '.' and '..' segments are not allowed", key=prefix)
    return prefix


def folder_prefix(prefix: str) -> str:
    """A folder-like prefix (``"a/b"``, ``"/a/b/"``) as ``"a/b/"`` (``""`` for the root), validated."""
    stripped = prefix.strip("/") if isinstance(prefix, str) else prefix
    if stripped:
        validate_key(stripped)
        return stripped + "/"
    return validate_prefix(stripped)


def join_key(*parts: str) -> str:
    """Join key parts with ``/``, skipping empty parts."""
    return "/".join(p.strip("/") for p in parts if p and p.strip("/"))


def slice_range(data: bytes, byte_range: ByteRange | None) -> bytes:
    """Apply a byte range to whole-object bytes (for stores without native range reads)."""
    if byte_range is None:
        return data
    start, stop = range_bounds(byte_range, len(data))
    return data[start:stop]


def range_bounds(byte_range: ByteRange | None, size: int) -> tuple[int, int]:
    """A byte range of an object of ``size`` bytes as ``(start, stop)``, clipped to the object."""
    if byte_range is None:
        return 0, size
    if isinstance(byte_range, RangeRequest):
        start, stop = byte_range.start, byte_range.end
    elif isinstance(byte_range, OffsetRequest):
        start, stop = byte_range.offset, size
    elif isinstance(byte_range, SuffixRequest):
        start, stop = size - byte_range.suffix if byte_range.suffix else size, size
    else:
        raise TypeError(f"unknown byte range {byte_range!r}")
    start = min(max(start, 0), size)
    return start, max(start, min(stop, size))


class Store(abc.ABC):
    """A key/value store of bytes. Implementations must be safe to use from many threads.

    Every ``put`` is atomic: a reader sees the old object, the new object, or nothing, never a part.
    ``mode="create"`` writes only if the key is absent and raises :class:`~zarrcore.errors.AlreadyExists`
    otherwise; the check and the write are one operation on the server.
    """

    #: Whether writes are refused.
    read_only: bool = False
    #: ``"cpu"`` where a chunk's I/O costs only CPU (memory, local disk without fsync), so slicing uses
    #: one thread per core; ``"latency"`` where it waits on a network or a disk flush, so slicing keeps
    #: many requests in flight (see :mod:`zarrcore.pool`).
    io_kind: IOKind = "latency"
    #: Byte ranges of one object at most this many bytes apart are read with one request (see
    #: :meth:`get_ranges`): on an object store another request costs more than a few hundred KiB more.
    range_gap: int = 1 << 20

    @property
    @abc.abstractmethod
    def url(self) -> str:
        """A URL naming the store root; never contains credentials."""

    @abc.abstractmethod
    def get(self, key: str, byte_range: ByteRange | None = None) -> bytes:
        """Return the object's bytes (or a range of them). Raises ``NotFound``."""

    def get_versioned(
        self, key: str, byte_range: ByteRange | None = None, *, version: str | None = None
    ) -> tuple[bytes, str | None]:
        """Like :meth:`get`, with the object's version (an ETag, a generation...): given ``version``,
        the read succeeds only if the object is still that version, else raises
        :class:`~zarrcore.errors.PreconditionFailed`. Several reads of one object that pass the
        version of the first therefore see one object. A store that cannot tell returns ``None``."""
        return self.get(key, byte_range), None

    @abc.abstractmethod
    def put(self, key: str, data: bytes | bytearray | memoryview, *, mode: PutMode = "overwrite") -> None:
        """Write an object atomically; ``mode="create"`` fails with ``AlreadyExists`` if present."""

    def put_parts(self, key: str, parts: Sequence[bytes | bytearray | memoryview], *,
                  mode: PutMode = "overwrite") -> None:  # fmt: skip
        """Write the concatenation of ``parts`` as one object, as :meth:`put` does (a shard's inner chunks
        and index as they were encoded). A store that can send a list of buffers as it is overrides this
        (local disk: one ``writev``); the others join them and :meth:`put` the result."""
        self.put(key, parts[0] if len(parts) == 1 else b"".join(parts), mode=mode)

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Delete an object; deleting a missing key is not an error."""

    @abc.abstractmethod
    def list(self, prefix: str = "") -> Iterator[str]:
        """Yield every key starting with ``prefix``, across all pages, in no set order. Implementations
        check ``prefix`` with :func:`validate_prefix`."""

    def exists(self, key: str) -> bool:
        """Whether the key holds an object."""
        try:
            self.size(key)
        except KeyError:
            return False
        return True

    @abc.abstractmethod
    def size(self, key: str) -> int:
        """The object's size in bytes. Raises ``NotFound``."""

    def list_dir(self, prefix: str = "") -> tuple[list[str], list[str]]:
        """Immediate children under ``prefix``: (object names, sub-prefix names), both sorted."""
        base = folder_prefix(prefix)
        keys: set[str] = set()
        dirs: set[str] = set()
        for k in self.list(base):
            rest = k[len(base) :]
            head, sep, _ = rest.partition("/")
            (dirs if sep else keys).add(head)
        return sorted(keys), sorted(dirs)

    def delete_prefix(self, prefix: str) -> int:
        """Delete every key under ``prefix`` (a folder-like prefix); return how many."""
        base = folder_prefix(prefix)
        n = 0
        for k in list(self.list(base)):
            self.delete(k)
            n += 1
        return n

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections; the store may not be used afterwards."""

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"

    def get_ranges(
        self, key: str, ranges: Sequence[RangeRequest], *, version: str | None = None, into: memoryview | None = None
    ) -> list[bytes | memoryview]:
        """The bytes of each of ``ranges`` of one object, in the order asked. Ranges close together
        share one request (the rule is :func:`zarrcore.storage.ranges.coalesce`), the requests in
        flight together; given ``version``, each is read only from that version of the object (see
        :meth:`get_versioned`). Raises ``NotFound`` or ``PreconditionFailed`` as ``get_versioned`` does.

        ``into`` (at least the ranges' total length) is memory the caller reuses: a store that copies
        the bytes anyway (local disk) may read them into it, one range after another, and answer views
        of it, valid until the caller reuses it. Stores whose bytes arrive as objects of their own ignore it."""
        from zarrcore.storage.ranges import read_ranges  # ranges builds on this module

        return read_ranges(self, key, ranges, version=version)
