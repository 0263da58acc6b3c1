"""The cloud stores under injected faults: a fault proxy sits between each store and its real server."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.fixtures.faultproxy import FaultProxy
from zarrcore import telemetry
from zarrcore.errors import AccessDenied, StoreError, TransientStoreError
from zarrcore.retry import NO_RETRY, RetryPolicy
from zarrcore.storage.base import Store

BACKENDS = ["s3", "gcs", "azure"]
FAULTS = {"503": 0.05, "500": 0.05, "reset": 0.05, "stall": 0.05}  # 20% in all
READ_TIMEOUT = 1.0  # generous: a loaded 2-core machine must not turn slow answers into timeouts
FAST_RETRY = RetryPolicy(attempts=6, base_delay=0.005, max_delay=0.05, deadline=30)

ProxiedStore = Callable[..., tuple[Store, FaultProxy]]


@pytest.fixture
def retry_events() -> Iterator[list[dict[str, Any]]]:
    """The metadata of every ("zarrcore", "retry") event during the test."""
    events: list[dict[str, Any]] = []
    handler_id = telemetry.attach(("zarrcore", "retry"), lambda _e, m, md: events.append({**m, **md}))
    yield events
    telemetry.detach(handler_id)


@pytest.fixture(params=BACKENDS)
def proxied(request: pytest.FixtureRequest, fault_proxy: Callable[..., FaultProxy]) -> ProxiedStore:
    """``proxied(retry=..., **proxy_options) -> (store, proxy)``: a store on a fresh bucket, through a proxy."""
    backend = request.param
    server = request.getfixturevalue(f"{backend}_server")
    bucket = server.new_container() if backend == "azure" else server.new_bucket()

    def make(retry: RetryPolicy = FAST_RETRY, **proxy_options: Any) -> tuple[Store, FaultProxy]:
        proxy = fault_proxy(server.process.endpoint, **proxy_options)
        endpoint = {"endpoint" if backend == "azure" else "endpoint_url": proxy.url}
        store = server.store(bucket, "root", retry=retry, read_timeout=READ_TIMEOUT, connect_timeout=2, **endpoint)
        request.addfinalizer(store.close)
        return store, proxy

    return make


def payload(i: int) -> bytes:
    """Deterministic, distinct, 1-4 KiB."""
    seed = hashlib.sha256(str(i).encode()).digest()
    return seed * (32 + i % 96)


def test_200_objects_survive_20_percent_faults(proxied: ProxiedStore, retry_events: list[dict[str, Any]]) -> None:
    store, proxy = proxied(faults=FAULTS, seed=42, stall_seconds=2.5, max_consecutive=3)
    keys = [f"chunks/{i // 20}.{i % 20}" for i in range(200)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: store.put(keys[i], payload(i)), range(200)))
        read = list(pool.map(store.get, keys))
    assert read == [payload(i) for i in range(200)]
    assert sorted(store.list("chunks/")) == sorted(keys)

    assert set(proxy.faults) == set(FAULTS), proxy.faults  # every kind of fault happened
    assert 0.1 < proxy.injected / proxy.requests < 0.3
    # Every fault was retried, and one retry layer means each retry is exactly one more request:
    # 200 puts + 200 gets + 1 listing page, plus the retries, and nothing the SDK retried on its own.
    assert len(retry_events) >= proxy.injected
    assert proxy.requests == 401 + len(retry_events)
    assert all(isinstance(e["error"], TransientStoreError) for e in retry_events)


@pytest.mark.parametrize("status", [401, 403])
def test_persistent_auth_failure_fails_fast(
    proxied: ProxiedStore, retry_events: list[dict[str, Any]], status: int
) -> None:
    store, proxy = proxied(retry=RetryPolicy(attempts=5, base_delay=0.01), fixed_status=status)
    for operation in (lambda: store.get("k"), lambda: store.put("k", b"v"), lambda: list(store.list())):
        with pytest.raises(AccessDenied) as info:
            operation()
        assert store.url in str(info.value)
    assert proxy.requests <= 3 * 2  # at most 2 per operation: no retry storm
    assert retry_events == []


@pytest.mark.parametrize("attempts", [1, 3])
def test_sdk_retries_are_off(proxied: ProxiedStore, retry_events: list[dict[str, Any]], attempts: int) -> None:
    """A persistent 503 reaches the server exactly ``attempts`` times: the SDK adds no retries of its own."""
    policy = NO_RETRY if attempts == 1 else RetryPolicy(attempts=attempts, base_delay=0.001)
    store, proxy = proxied(retry=policy, fixed_status=503)
    with pytest.raises(TransientStoreError) as info:
        store.get("some/key")
    assert info.value.key == "some/key"
    assert proxy.requests == attempts
    assert len(retry_events) == attempts - 1


def test_stall_is_a_transient_read_timeout(proxied: ProxiedStore, retry_events: list[dict[str, Any]]) -> None:
    # Every request stalls once, then goes through: the store retries each and succeeds. (On a loaded
    # machine the server's own answer can outlast the read timeout too: one more retry, whose request
    # the proxy then stalls again; each stall is still one timeout, retried.)
    store, proxy = proxied(faults={"stall": 1.0}, max_consecutive=1, stall_seconds=2.5)
    store.put("slow", b"data")
    assert store.get("slow") == b"data"
    assert proxy.faults["stall"] >= 2 and len(retry_events) >= proxy.faults["stall"]
    assert {type(e["error"]) for e in retry_events} == {TransientStoreError}

    # A request that always stalls gives up after the policy's attempts with TransientStoreError.
    store, proxy = proxied(retry=RetryPolicy(attempts=2, base_delay=0.001), faults={"stall": 1.0}, max_consecutive=99)
    with pytest.raises(TransientStoreError) as info:
        store.get("slow")
    assert info.value.key == "slow" and store.url in str(info.value)
    assert proxy.requests == 2


def test_errors_are_typed_store_errors(proxied: ProxiedStore) -> None:
    store, _ = proxied(fixed_status=400)
    with pytest.raises(StoreError) as info:
        store.put("k", b"v")
    assert type(info.value) is StoreError and info.value.key == "k"


def test_fault_decisions_are_deterministic_under_a_seed() -> None:
    requests = [("PUT", f"/b/k{i}", b"x" * i) for i in range(300)] * 2
    runs = []
    for _ in range(2):
        proxy = FaultProxy("http://127.0.0.1:9", faults=FAULTS, seed=7)
        try:
            runs.append([proxy.decide(m, p, {}, body) for m, p, body in requests])
        finally:
            proxy.stop()
    assert runs[0] == runs[1]
    assert 0.1 < sum(f is not None for f in runs[0]) / len(requests) < 0.3
    other = FaultProxy("http://127.0.0.1:9", faults=FAULTS, seed=8)
    try:
        assert [other.decide(m, p, {}, body) for m, p, body in requests] != runs[0]
    finally:
        other.stop()
