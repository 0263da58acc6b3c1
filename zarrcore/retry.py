"""The one retry policy: capped attempts, exponential backoff with full jitter, and a deadline.

Only :class:`~zarrcore.errors.Throttled` and :class:`~zarrcore.errors.TransientStoreError` are
retried by default. Cloud stores turn their SDK's own retries off and retry through this policy,
so a request is never retried by two layers at once.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

from zarrcore import telemetry
from zarrcore.errors import ChunkError, Throttled, TransientStoreError

__all__ = ["RetryPolicy", "DEFAULT", "NO_RETRY", "call", "is_retryable"]

T = TypeVar("T")

_RETRYABLE: tuple[type[BaseException], ...] = (Throttled, TransientStoreError)


def is_retryable(exc: BaseException) -> bool:
    """Whether an error may pass on its own (throttling, 5xx, resets, timeouts)."""
    if isinstance(exc, ChunkError):
        exc = exc.cause
    return isinstance(exc, _RETRYABLE)


@dataclass(frozen=True)
class RetryPolicy:
    """How to retry: ``attempts`` tries in all, sleeping ``uniform(0, min(max_delay, base_delay * 2**n))``
    between them (full jitter), and never starting a try after ``deadline`` seconds."""

    attempts: int = 5
    base_delay: float = 0.05
    max_delay: float = 5.0
    deadline: float | None = 120.0
    retryable: Callable[[BaseException], bool] = field(default=is_retryable, compare=False)

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"attempts must be >= 1, got {self.attempts}")
        if self.base_delay < 0 or self.max_delay < 0:
            raise ValueError("delays must be >= 0")

    def backoff(self, retry_number: int) -> float:
        """The sleep before retry ``retry_number`` (1-based), with full jitter."""
        cap = min(self.max_delay, self.base_delay * (2 ** (retry_number - 1)))
        return random.uniform(0, cap)

    def delays(self) -> Iterator[float]:
        """The sleeps between tries (``attempts - 1`` of them)."""
        for n in range(1, self.attempts):
            yield self.backoff(n)


DEFAULT = RetryPolicy()
NO_RETRY = RetryPolicy(attempts=1)


def call(
    fn: Callable[[], T],
    policy: RetryPolicy | None = None,
    *,
    description: str = "",
    on_retry: Callable[[int, BaseException, float], None] | None = None,
) -> T:
    """Call ``fn()`` and retry it under ``policy`` (default :data:`DEFAULT`) while errors are retryable.

    Each retry emits the telemetry event ``("zarrcore", "retry")`` with the attempt number, the delay
    and the error, and calls ``on_retry(attempt, exc, delay)`` if given. The last error is re-raised.
    """
    policy = policy or DEFAULT
    start = time.monotonic()
    attempt = 1
    while True:
        try:
            return fn()
        except BaseException as exc:
            if attempt >= policy.attempts or not policy.retryable(exc):
                raise
            delay = policy.backoff(attempt)
            if policy.deadline is not None and time.monotonic() - start + delay > policy.deadline:
                raise
            if telemetry.enabled():
                telemetry.emit(
                    ("zarrcore", "retry"),
                    {"attempt": attempt, "delay": delay},
                    {"error": exc, "description": description},
                )
            if on_retry is not None:
                on_retry(attempt, exc, delay)
            time.sleep(delay)
            attempt += 1
