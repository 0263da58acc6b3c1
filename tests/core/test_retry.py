"""The retry policy and zarrcore.retry.call: full jitter, attempt cap, deadline, what is retried, events."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from zarrcore import retry, telemetry
from zarrcore.errors import AccessDenied, ChunkError, NotFound, Throttled, TransientStoreError
from zarrcore.retry import RetryPolicy


class FixedDelay(RetryPolicy):
    """A policy whose sleeps are a known constant, to test the deadline rule without randomness."""

    def backoff(self, retry_number: int) -> float:
        return self.base_delay


class Flaky:
    """Fails with the given errors in turn, then returns ``"ok"``."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


@pytest.fixture
def seeded() -> Iterator[None]:
    state = random.getstate()
    random.seed(20240601)
    yield
    random.setstate(state)


@pytest.fixture
def retry_events() -> Iterator[list[tuple[Any, dict[str, Any], dict[str, Any]]]]:
    events: list[tuple[Any, dict[str, Any], dict[str, Any]]] = []
    hid = telemetry.attach(("zarrcore", "retry"), lambda e, m, md: events.append((e, m, md)))
    yield events
    telemetry.detach(hid)


def test_full_jitter_stays_within_its_cap_and_spreads_over_it(seeded: None) -> None:
    policy = RetryPolicy(attempts=10, base_delay=0.1, max_delay=1.0)
    for n in range(1, 10):
        cap = min(1.0, 0.1 * 2 ** (n - 1))
        samples = [policy.backoff(n) for _ in range(2000)]
        assert all(0 <= s <= cap for s in samples)
        assert min(samples) < 0.05 * cap and max(samples) > 0.95 * cap  # uniform over [0, cap], not fixed
    assert len(list(policy.delays())) == 9


def test_attempts_are_capped_and_the_last_error_is_raised(retry_events: list[Any]) -> None:
    errors = [TransientStoreError(f"503 #{n}") for n in range(5)]
    fn = Flaky(*errors)
    with pytest.raises(TransientStoreError, match="#3"):
        retry.call(fn, RetryPolicy(attempts=4, base_delay=0.0))
    assert fn.calls == 4
    assert [m["attempt"] for _, m, _ in retry_events] == [1, 2, 3]


def test_success_after_retryable_errors(retry_events: list[Any]) -> None:
    fn = Flaky(Throttled("slow down"), TransientStoreError("reset"))
    told: list[tuple[int, str, float]] = []
    result = retry.call(fn, RetryPolicy(attempts=5, base_delay=0.001), description="get 'c/0/0'",
                        on_retry=lambda n, exc, delay: told.append((n, type(exc).__name__, delay)))  # fmt: skip
    assert result == "ok" and fn.calls == 3
    assert [(n, name) for n, name, _ in told] == [(1, "Throttled"), (2, "TransientStoreError")]
    assert [e for e, _, _ in retry_events] == [("zarrcore", "retry")] * 2
    _, measurements, metadata = retry_events[0]
    assert 0 <= measurements["delay"] <= 0.001 and measurements["delay"] == told[0][2]
    assert isinstance(metadata["error"], Throttled) and metadata["description"] == "get 'c/0/0'"


@pytest.mark.parametrize("error", [AccessDenied("403"), NotFound("404"), ValueError("bad"), KeyboardInterrupt()])
def test_errors_that_will_not_pass_are_not_retried(error: BaseException, retry_events: list[Any]) -> None:
    fn = Flaky(error, error)
    with pytest.raises(type(error)):
        retry.call(fn, RetryPolicy(attempts=5, base_delay=0.0))
    assert fn.calls == 1 and retry_events == []


def test_chunk_errors_are_retried_by_their_cause() -> None:
    assert retry.is_retryable(ChunkError((0,), TransientStoreError("503")))
    assert not retry.is_retryable(ChunkError((0,), AccessDenied("403")))
    fn = Flaky(ChunkError((1, 2), Throttled("429")))
    assert retry.call(fn, RetryPolicy(attempts=2, base_delay=0.0)) == "ok"


def test_a_retry_that_would_end_past_the_deadline_is_not_started(retry_events: list[Any]) -> None:
    fn = Flaky(*[TransientStoreError("503")] * 10)
    with pytest.raises(TransientStoreError):
        retry.call(fn, FixedDelay(attempts=10, base_delay=1.0, deadline=0.5))
    assert fn.calls == 1 and retry_events == []  # sleeping 1 s would overrun 0.5 s: give up at once


def test_the_deadline_bounds_the_number_of_tries() -> None:
    fn = Flaky(*[TransientStoreError("503")] * 100)
    with pytest.raises(TransientStoreError):
        retry.call(fn, FixedDelay(attempts=100, base_delay=0.02, deadline=0.07))
    # Tries start at >= 0, 0.02, 0.04, 0.06 s; a fourth sleep would end past 0.07 s.
    assert 2 <= fn.calls <= 4


def test_no_deadline_and_custom_retryable_rule() -> None:
    fn = Flaky(*[OSError("flaky disk")] * 3)
    policy = RetryPolicy(attempts=4, base_delay=0.0, deadline=None, retryable=lambda e: isinstance(e, OSError))
    assert retry.call(fn, policy) == "ok" and fn.calls == 4


@pytest.mark.parametrize(
    "make", [lambda: RetryPolicy(attempts=0), lambda: RetryPolicy(base_delay=-1), lambda: RetryPolicy(max_delay=-1)]
)
def test_bad_policies_are_refused(make: Callable[[], RetryPolicy]) -> None:
    with pytest.raises(ValueError):
        make()


def test_defaults() -> None:
    assert retry.NO_RETRY.attempts == 1
    fn = Flaky(TransientStoreError("503"))
    with pytest.raises(TransientStoreError):
        retry.call(fn, retry.NO_RETRY)
    assert fn.calls == 1
    assert retry.DEFAULT.attempts > 1 and retry.DEFAULT.deadline is not None
