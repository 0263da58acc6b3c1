"""An in-process store backed by a dict. ``memory://name`` URLs share one store per name."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator

from zarrcore.errors import AlreadyExists, InvalidURL, NotFound, PreconditionFailed, ReadOnlyError
from zarrcore.storage.base import ByteRange, PutMode, Store, slice_range, validate_key, validate_prefix
from zarrcore.storage.urls import parse_url

__all__ = ["MemoryStore"]

_NAMED: dict[str, MemoryStore] = {}
_NAMED_LOCK = threading.Lock()


class MemoryStore(Store):
    """Objects kept in a dict; useful for tests and scratch arrays."""

    io_kind = "cpu"

    def __init__(self, name: str | None = None, *, read_only: bool = False) -> None:
        self._name = name or f"{id(self):x}"
        self.read_only = read_only
        self._data: dict[str, bytes] = {}
        self._versions: dict[str, int] = {}  # a number per put, for get_versioned
        self._puts = itertools.count(1)
        self._lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str, **options: object) -> MemoryStore:
        """``memory://name`` returns the one store of that name in this process."""
        if options:
            raise TypeError(f"memory store takes no options, got {sorted(options)}")
        parsed = parse_url(url)
        if parsed.scheme != "memory" and "://" in url:
            raise InvalidURL(f"expected a memory:// URL or a name, not a {parsed.scheme}:// URL", part="scheme")
        name = parsed.path.strip("/")
        if not name:
            return cls()
        with _NAMED_LOCK:
            store = _NAMED.get(name)
            if store is None:
                store = _NAMED[name] = cls(name)
            return store

    @property
    def url(self) -> str:
        return f"memory://{self._name}"

    def get(self, key: str, byte_range: ByteRange | None = None) -> bytes:
        validate_key(key)
        try:
            data = self._data[key]
        except KeyError:
            raise NotFound(f"no object at key {key!r} in {self.url}", key=key, store=self.url) from None
        return slice_range(data, byte_range)

    def get_versioned(
        self, key: str, byte_range: ByteRange | None = None, *, version: str | None = None
    ) -> tuple[bytes, str | None]:
        validate_key(key)
        with self._lock:  # the object and its version together
            data, number = self._data.get(key), self._versions.get(key)
        if data is None:
            raise NotFound(f"no object at key {key!r} in {self.url}", key=key, store=self.url)
        current = str(number)
        if version is not None and version != current:
            raise PreconditionFailed(f"key {key!r} in {self.url} changed since it was read", key=key, store=self.url)
        return slice_range(data, byte_range), current

    def _writable(self, key: str) -> None:
        validate_key(key)
        if self.read_only:
            raise ReadOnlyError(f"store {self.url} is read-only; cannot write {key!r}", key=key, store=self.url)

    def put(self, key: str, data: bytes | bytearray | memoryview, *, mode: PutMode = "overwrite") -> None:
        self._writable(key)
        value = bytes(data)
        with self._lock:
            if mode == "create" and key in self._data:
                raise AlreadyExists(f"key {key!r} already exists in {self.url}", key=key, store=self.url)
            self._data[key] = value
            self._versions[key] = next(self._puts)

    def delete(self, key: str) -> None:
        self._writable(key)
        with self._lock:
            self._data.pop(key, None)
            self._versions.pop(key, None)

    def list(self, prefix: str = "") -> Iterator[str]:
        validate_prefix(prefix)
        with self._lock:
            keys = [k for k in self._data if k.startswith(prefix)]
        return iter(keys)

    def size(self, key: str) -> int:
        validate_key(key)
        try:
            return len(self._data[key])
        except KeyError:
            raise NotFound(f"no object at key {key!r} in {self.url}", key=key, store=self.url) from None

    def exists(self, key: str) -> bool:
        validate_key(key)
        return key in self._data
