"""What the cloud backends share about HTTP: status codes to the error tree, byte ranges as ``Range``
headers, and telling a refused TLS certificate (permanent) from a broken connection (transient)."""

from __future__ import annotations

import ssl

from zarrcore.errors import (
    AccessDenied,
    AlreadyExists,
    NotFound,
    PreconditionFailed,
    StoreError,
    Throttled,
    TransientStoreError,
)
from zarrcore.storage.base import ByteRange, OffsetRequest, RangeRequest, SuffixRequest

__all__ = ["certificate_refused", "classify_status", "http_range"]

_THROTTLE_CODES = frozenset({"SlowDown", "ServerBusy", "TooManyRequests", "RequestLimitExceeded"})


def classify_status(status: int, code: str = "") -> type[StoreError]:
    """The error class for an HTTP status (and the service's error code, which refines 503)."""
    if status == 404:
        return NotFound
    if status in (401, 403):
        return AccessDenied
    if status == 412:
        return PreconditionFailed
    if status == 409:
        return AlreadyExists
    if status == 429 or code in _THROTTLE_CODES:
        return Throttled
    if status in (408, 500, 502, 503, 504) or code in ("RequestTimeout", "InternalError"):
        return TransientStoreError
    return StoreError


def certificate_refused(exc: BaseException) -> bool:
    """Whether an error is a TLS certificate that failed verification (permanent), as opposed to a
    broken handshake or connection (transient). SDKs wrap it, so the causes are searched too."""
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return False
        if isinstance(seen, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def http_range(byte_range: ByteRange) -> str:
    """The HTTP ``Range`` header value for a non-empty byte range."""
    if isinstance(byte_range, RangeRequest):
        return f"bytes={byte_range.start}-{byte_range.end - 1}"
    if isinstance(byte_range, OffsetRequest):
        return f"bytes={byte_range.offset}-"
    if isinstance(byte_range, SuffixRequest):
        return f"bytes=-{byte_range.suffix}"
    raise TypeError(f"unknown byte range {byte_range!r}")
