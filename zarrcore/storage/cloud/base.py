"""The base of the cloud stores: key <-> object-name mapping, the one retry layer, SDK errors turned
into the error tree, and paginated listing.

A backend subclasses :class:`CloudStore` and implements six hooks (``_get_versioned``, ``_put``, ``_delete``,
``_size``, ``_list_page`` and ``_classify``). Every public operation validates the key before any
I/O, runs the hook under :func:`zarrcore.retry.call` (the SDK's own retries are off), and turns SDK
errors into the :mod:`zarrcore.errors` tree with a message naming the key and the store URL.
"""

from __future__ import annotations

import abc
import functools
from collections.abc import Callable, Iterator
from typing import Any, ClassVar, Self, TypeVar

from zarrcore import retry as _retry
from zarrcore.errors import (
    AlreadyExists,
    InvalidKey,
    InvalidURL,
    NotFound,
    PreconditionFailed,
    ReadOnlyError,
    StoreError,
)
from zarrcore.storage.base import (
    ByteRange,
    OffsetRequest,
    PutMode,
    RangeRequest,
    Store,
    SuffixRequest,
    folder_prefix,
    validate_key,
    validate_prefix,
)
from zarrcore.storage.cloud.http import certificate_refused
from zarrcore.storage.cloud.redact import protect_logs, redact
from zarrcore.storage.urls import ParsedURL, parse_url

__all__ = ["Classified", "CloudStore", "Page", "missing_sdk", "short"]

T = TypeVar("T")

#: What a backend's ``_classify`` returns: the error class and a short reason ("HTTP 404 NoSuchKey").
Classified = tuple[type[StoreError], str]
#: One page of a listing: ``(object names, common prefixes, next page token or None)``.
Page = tuple[list[str], list[str], str | None]


def missing_sdk(package: str, extra: str) -> ImportError:
    """The error raised when a backend's SDK is not installed."""
    return ImportError(f"{package} is not installed; install it with: pip install 'zarrcore[{extra}]'", name=package)


def short(text: object, limit: int = 200) -> str:
    """A one-line, bounded excerpt of an SDK message for our error messages."""
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


# ------------------------------------------------------------------------------------ the store


def _is_empty_range(byte_range: ByteRange | None) -> bool:
    if isinstance(byte_range, RangeRequest):
        if byte_range.start < 0 or byte_range.end < 0:
            raise ValueError(f"byte range bounds must be >= 0, got {byte_range}")
        return byte_range.end <= byte_range.start
    if isinstance(byte_range, OffsetRequest) and byte_range.offset < 0:
        raise ValueError(f"offset must be >= 0, got {byte_range}")
    if isinstance(byte_range, SuffixRequest):
        if byte_range.suffix < 0:
            raise ValueError(f"suffix must be >= 0, got {byte_range}")
        return byte_range.suffix == 0
    return False


class CloudStore(Store):
    """Base of the object-store backends: a bucket, a prefix inside it, and one retry policy."""

    scheme: ClassVar[str]
    #: Every URL scheme the backend reads (``scheme`` first, the one its :attr:`url` uses).
    schemes: ClassVar[tuple[str, ...]]
    #: Logger name prefixes of the SDK and its HTTP stack, redacted by :func:`protect_logs`.
    log_prefixes: ClassVar[tuple[str, ...]] = ("urllib3",)
    #: How to make a server with a private CA trusted; told when its TLS certificate fails the check.
    tls_hint: ClassVar[str] = "to trust a private CA, set REQUESTS_CA_BUNDLE to its CA bundle"

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        retry: _retry.RetryPolicy | None = None,
        read_only: bool = False,
        list_page_size: int = 1000,
    ) -> None:
        if not bucket or "/" in bucket:
            raise ValueError(f"invalid bucket name {bucket!r}")
        prefix = prefix.strip("/")
        if prefix:
            try:
                validate_key(prefix)
            except InvalidKey as exc:
                raise ValueError(f"invalid store prefix {prefix!r}") from exc
        if list_page_size < 1:
            raise ValueError(f"list_page_size must be >= 1, got {list_page_size}")
        self.bucket = bucket
        self.prefix = prefix
        self.retry = retry if retry is not None else _retry.DEFAULT
        self.read_only = read_only
        self.list_page_size = list_page_size
        self._root = f"{prefix}/" if prefix else ""

    @classmethod
    def parse(cls, url: str) -> ParsedURL:
        """``url`` taken apart by the one URL parser, checked to be one of this backend's schemes."""
        parsed = parse_url(url)
        if parsed.scheme not in cls.schemes:
            expected = " or ".join(f"{scheme}://" for scheme in cls.schemes)
            raise InvalidURL(f"expected a URL starting with {expected}", part="scheme")
        return parsed

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        """``scheme://bucket/prefix`` with constructor keywords as options."""
        parsed = cls.parse(url)
        return cls(parsed.bucket, parsed.path, **options)

    # -- hooks ---------------------------------------------------------------------------------

    @abc.abstractmethod
    def _get_versioned(self, name: str, byte_range: ByteRange | None, version: str | None) -> tuple[bytes, str | None]:
        """One read of object ``name`` and its version (ETag, generation); with ``version``, only if the
        object is still that version (the SDK's 412 becomes ``PreconditionFailed``). A range starting
        past the end returns ``b""``."""

    @abc.abstractmethod
    def _put(self, name: str, data: bytes, create: bool) -> None:
        """One atomic write; ``create`` makes it conditional on the object being absent."""

    @abc.abstractmethod
    def _delete(self, name: str) -> None:
        """Delete; a missing object is not an error."""

    @abc.abstractmethod
    def _size(self, name: str) -> int:
        """Object size; a missing object raises the SDK's not-found error."""

    @abc.abstractmethod
    def _list_page(self, prefix: str, delimiter: str | None, token: str | None) -> Page:
        """One page of a listing of object names starting with ``prefix``."""

    @abc.abstractmethod
    def _classify(self, exc: Exception) -> Classified:
        """Map an SDK/transport error to a :mod:`zarrcore.errors` class and a short reason."""

    # -- shared machinery ----------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.bucket}/{self.prefix}".rstrip("/")

    def _name(self, key: str) -> str:
        return self._root + validate_key(key)

    def _call(self, op: str, key: str | None, fn: Callable[[], T]) -> T:
        """Run one SDK call under the store's retry policy, with errors typed."""

        def attempt() -> T:
            try:
                return fn()
            except StoreError:
                raise
            except Exception as exc:
                raise self._error(op, key, exc) from exc

        return _retry.call(attempt, self.retry, description=f"{op} {key!r} in {self.url}")

    def _error(self, op: str, key: str | None, exc: Exception) -> StoreError:
        if certificate_refused(exc):  # permanent: a retry meets the same certificate
            cls: type[StoreError] = StoreError
            reason = f"the server's TLS certificate failed the check: {short(exc)}; {self.tls_hint}"
        else:
            cls, reason = self._classify(exc)
        where = f"{'prefix' if op == 'list' else 'key'} {key!r} in {self.url}" if key is not None else self.url
        if cls is NotFound:
            summary = f"no object at {where}"
        elif cls is PreconditionFailed and op == "get":
            summary = f"{where} changed since it was read"
        elif issubclass(cls, AlreadyExists):
            summary = f"{where} already exists" if op == "create" else f"conflict for {where}"
        else:
            summary = f"{op} failed for {where}"
        return cls(redact(f"{summary} ({reason})"), key=key, store=self.url)

    def _writable(self, key: str) -> None:
        if self.read_only:
            raise ReadOnlyError(f"store {self.url} is read-only; cannot write {key!r}", key=key, store=self.url)

    # -- the Store protocol --------------------------------------------------------------------

    def get(self, key: str, byte_range: ByteRange | None = None) -> bytes:
        return self.get_versioned(key, byte_range)[0]

    def put(self, key: str, data: bytes | bytearray | memoryview, *, mode: PutMode = "overwrite") -> None:
        name = self._name(key)
        if mode not in ("overwrite", "create"):
            raise ValueError(f"mode must be 'overwrite' or 'create', got {mode!r}")
        self._writable(key)
        body = bytes(data)
        self._call(mode if mode == "create" else "put", key, lambda: self._put(name, body, mode == "create"))

    def get_versioned(
        self, key: str, byte_range: ByteRange | None = None, *, version: str | None = None
    ) -> tuple[bytes, str | None]:
        name = self._name(key)
        if _is_empty_range(byte_range):
            self.size(key)  # still NotFound for a missing key
            return b"", version
        return self._call("get", key, lambda: self._get_versioned(name, byte_range, version))

    def delete(self, key: str) -> None:
        name = self._name(key)
        self._writable(key)
        self._call("delete", key, lambda: self._delete(name))

    def size(self, key: str) -> int:
        name = self._name(key)
        return self._call("size", key, lambda: self._size(name))

    def _pages(self, prefix: str, delimiter: str | None) -> Iterator[tuple[list[str], list[str]]]:
        """Every page of a listing, each page request retried on its own."""
        token: str | None = None
        while True:
            names, prefixes, next_token = self._call(
                "list", prefix, functools.partial(self._list_page, self._root + prefix, delimiter, token)
            )
            yield names, prefixes
            if not next_token:
                return
            if next_token == token:
                raise StoreError(f"listing {prefix!r} in {self.url}: the server repeated a page token", store=self.url)
            token = next_token

    def _keys(self, names: list[str], base: str = "") -> Iterator[str]:
        skip = len(self._root) + len(base)
        for name in names:
            if not name.endswith("/"):  # folder markers are not keys
                yield name[skip:]

    def list(self, prefix: str = "") -> Iterator[str]:
        validate_prefix(prefix)  # now, not at the first page
        return (key for names, _ in self._pages(prefix, None) for key in self._keys(names))

    def list_dir(self, prefix: str = "") -> tuple[list[str], list[str]]:
        base = folder_prefix(prefix)
        keys: list[str] = []
        dirs: list[str] = []
        skip = len(self._root) + len(base)
        for names, prefixes in self._pages(base, "/"):
            keys.extend(self._keys(names, base))
            dirs.extend(p[skip:].rstrip("/") for p in prefixes)
        return sorted(keys), sorted(d for d in dirs if d)

    def _protect_logs(self) -> None:
        protect_logs(*self.log_prefixes)

    def _describe(self) -> dict[str, object]:
        """Non-secret settings shown by ``repr``."""
        return {}

    def __repr__(self) -> str:
        extra = "".join(f", {k}={v!r}" for k, v in self._describe().items() if v is not None)
        return f"{type(self).__name__}({self.url!r}{extra})"
