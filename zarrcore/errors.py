"""The one exception tree of zarrcore.

Every error names the key, chunk index or metadata field at fault. Callers catch
:class:`ZarrcoreError` for everything, or a leaf for one cause.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ZarrcoreError",
    "MetadataError",
    "MetadataConflictError",
    "UnsupportedDtypeError",
    "CodecError",
    "StoreError",
    "NotFound",
    "AlreadyExists",
    "PreconditionFailed",
    "Throttled",
    "TransientStoreError",
    "AccessDenied",
    "InvalidKey",
    "InvalidURL",
    "ReadOnlyError",
    "ChunkError",
    "SelectionError",
    "DatasetError",
    "LayoutMismatchError",
    "StaticMismatchError",
    "OrderError",
    "ChangedSourceError",
    "CommitConflictError",
    "PendingCommitError",
    "IncompleteCommitError",
    "ClaimError",
    "WriterBusy",
    "ClaimLost",
]


class ZarrcoreError(Exception):
    """Base of every error raised by zarrcore."""


class MetadataError(ZarrcoreError, ValueError):
    """Array or group metadata is malformed, unsupported or inconsistent."""


class UnsupportedDtypeError(MetadataError):
    """A data type that this Zarr format (or zarrcore) cannot store."""


class CodecError(ZarrcoreError):
    """A codec is unknown, misconfigured, or failed to encode/decode a chunk."""


class SelectionError(ZarrcoreError, IndexError):
    """An index or slice does not fit the array, or assigned data has the wrong shape."""


class StoreError(ZarrcoreError):
    """A store operation failed. ``key`` names the object, when one is involved."""

    def __init__(self, message: str, *, key: str | None = None, store: str | None = None) -> None:
        self.key = key
        self.store = store
        super().__init__(message)


class NotFound(StoreError, KeyError):
    """The key (or array/group) does not exist."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class AlreadyExists(StoreError):
    """A create-only write found the key already present."""


class PreconditionFailed(AlreadyExists):
    """A conditional write failed (create-only or ETag/generation mismatch)."""


class MetadataConflictError(AlreadyExists, MetadataError):
    """An array or group already exists with metadata different from what was asked."""


class Throttled(StoreError):
    """The service asked us to slow down (HTTP 429, S3 SlowDown/503). Retryable."""


class TransientStoreError(StoreError):
    """A failure that may pass: 5xx, connection reset, timeout. Retryable."""


class AccessDenied(StoreError):
    """Credentials are missing or lack permission (401/403). Never retried."""


class InvalidKey(StoreError, ValueError):
    """A key that could escape the store root or is otherwise malformed."""


class InvalidURL(ZarrcoreError, ValueError):
    """A store URL that cannot be used; ``part`` names what is wrong (``"scheme"``, ``"credentials"``,
    ``"query"``, ``"fragment"``, ``"bucket"`` or ``"account"``). The message never repeats a secret."""

    def __init__(self, message: str, *, part: str) -> None:
        self.part = part
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_invalid_url, (str(self), self.part))


def _invalid_url(message: str, part: str) -> InvalidURL:
    return InvalidURL(message, part=part)


class ReadOnlyError(StoreError):
    """A write to an array, group or store opened read-only."""


class ChunkError(ZarrcoreError):
    """Reading, decoding or writing one chunk failed; ``index`` names it and ``cause`` says why."""

    def __init__(self, index: tuple[int, ...], cause: BaseException, *, key: str | None = None) -> None:
        self.index = tuple(index)
        self.cause = cause
        self.key = key
        where = f"chunk {self.index}" + (f" (key {key!r})" if key else "")
        super().__init__(f"{where}: {type(cause).__name__}: {cause}")
        self.__cause__ = cause

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.index, self.cause), {"key": self.key})


class ClaimError(ZarrcoreError):
    """A writer claim (:mod:`zarrcore.claims`) could not be taken or kept. ``path`` names the node;
    ``holder`` is the claim in the way (a :class:`~zarrcore.claims.ClaimInfo`), when one is known."""

    def __init__(self, message: str, *, path: str, holder: Any = None) -> None:
        self.path = path
        self.holder = holder
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_claim_error, (type(self), str(self), self.path, self.holder))


def _claim_error(cls: type[ClaimError], message: str, path: str, holder: Any) -> ClaimError:
    return cls(message, path=path, holder=holder)


class WriterBusy(ClaimError):
    """Another live writer holds the claim on the node; the message names it (owner, host, pid, times)."""


class ClaimLost(ClaimError):
    """This writer's claim lapsed, was released, or was taken over; it must stop writing."""




class DatasetError(ZarrcoreError):
    """A dataset operation (create, append, region write) was refused; nothing was published.
    ``variable`` and ``source`` name the culprit, when one is involved."""

    def __init__(self, message: str, *, variable: str | None = None, source: str | None = None) -> None:
        self.variable = variable
        self.source = source
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_dataset_error, (type(self), str(self), self.__dict__.copy()))


def _dataset_error(cls: type[DatasetError], message: str, state: dict[str, Any]) -> DatasetError:
    err = cls.__new__(cls)
    Exception.__init__(err, message)
    err.__dict__.update(state)
    return err


class LayoutMismatchError(DatasetError, ValueError):
    """A piece does not fit the dataset: a variable missing or extra, other dims, dtype or encoding."""


class StaticMismatchError(LayoutMismatchError):
    """A variable without the append dimension differs from the one already written."""


class OrderError(DatasetError, ValueError):
    """A piece overlaps another or precedes the dataset's published end along the dimension."""


class ChangedSourceError(DatasetError):
    """A source already landed has changed (another size, version or content hash)."""


class CommitConflictError(DatasetError):
    """Another writer took this commit number first; this writer wrote nothing."""


class PendingCommitError(DatasetError):
    """An unpublished commit must be completed first and its sources were not given."""


class IncompleteCommitError(DatasetError):
    """A commit was asked for before every unit of the transaction was written."""
