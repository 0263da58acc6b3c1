"""Keeping secrets out of messages and logs: a registry of secret strings, :func:`redact`, and a
logging filter put on the SDKs' loggers.

The registry is process-wide on purpose: a secret given to one store must not appear in a record
logged by any thread of any store, and the SDKs' loggers are process-wide too.
"""

from __future__ import annotations

import logging
import re
import threading
from urllib.parse import quote, quote_plus, urlsplit, urlunsplit

__all__ = ["protect_logs", "redact", "register_secret", "safe_endpoint"]

_secrets: set[str] = set()
_secrets_lock = threading.Lock()
_MASK = "***"
# Secret-bearing fields whatever their value: Azure account keys and SAS signatures, S3 session tokens,
# request signatures, the access key id in SigV4 ``Credential=``, and bearer/shared-key auth headers.
_PATTERNS = [
    re.compile(r"(?i)(accountkey=|sharedaccesssignature=)[^;'\"\s]+"),
    re.compile(r"(?i)((?:[?&;]|\b)sig=|signature=)[^&;'\"\s,]+"),
    re.compile(r"(?i)(x-amz-security-token['\"]?\s*[:=]\s*b?['\"]?)[^'\"\s,&;]+"),
    re.compile(r"(?i)(credential=)[^/\s,'\"]+"),
    re.compile(r"(?i)(bearer\s+|sharedkey\s+[^:\s'\"]+:)[^'\"\s,]+"),
]


def register_secret(*values: object) -> None:
    """Remember secret strings so that :func:`redact` masks them (also their URL-quoted forms)."""
    with _secrets_lock:
        for value in values:
            if isinstance(value, str) and len(value) >= 6:
                _secrets.update({value, quote(value, safe=""), quote_plus(value)})


def redact(text: str) -> str:
    """``text`` with every registered secret and secret-bearing field masked."""
    with _secrets_lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, _MASK)
    for pattern in _PATTERNS:
        text = pattern.sub(rf"\1{_MASK}", text)
    return text


def safe_endpoint(url: str | None) -> str | None:
    """An endpoint URL without user info or query, fit for repr and messages."""
    if not url:
        return url
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


class _RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is the logging module's business
            return True
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


_FILTER = _RedactingFilter()


def protect_logs(*prefixes: str) -> None:
    """Redact secrets in records of every existing logger named under ``prefixes`` (SDK and HTTP loggers).

    Logger filters do not apply to records propagated from child loggers, so the filter goes on each
    logger. Backends call this once their SDK is imported and a client built (which imports the rest).
    """
    for name, logger in list(logging.Logger.manager.loggerDict.items()):
        if isinstance(logger, logging.Logger) and name.startswith(prefixes) and _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
