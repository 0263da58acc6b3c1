"""Writer claims between real processes on local disk and each cloud emulator."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import pytest

import zarrcore
from tests.claims.conftest import Backend, Writer
from tests.fixtures.flowkit import wait_until
from zarrcore.errors import ClaimLost


def spawn(writers: list[Writer], backend: Backend, owner: str, path: str = "arr", **cfg: Any) -> Writer:
    w = Writer(backend, path, owner, **cfg)
    writers.append(w)
    return w


def race(writers: list[Writer], backend: Backend, owners: list[str], **cfg: Any) -> list[dict[str, Any]]:
    """Start one writer per owner, let them all try at once, and return their outcomes."""
    group = [spawn(writers, backend, o, **cfg) for o in owners]
    for w in group:
        w.ready()
    for w in group:
        w.send("go")
    return [w.result() for w in group]


def test_two_writers_race_exactly_one_wins(backend: Backend, writers: list[Writer]) -> None:
    results = race(writers, backend, ["run-a", "run-b"], ttl=30.0)
    winners = [r["won"] for r in results if "won" in r]
    busy = [r for r in results if "busy" in r]
    assert len(winners) == 1 and len(busy) == 1, results
    assert busy[0]["holder"] == winners[0]
    message = busy[0]["busy"]
    holder = zarrcore.current_writer(backend.store, "arr")
    assert holder is not None and holder.owner == winners[0]
    for part in (f"owner {winners[0]!r}", f"host {holder.host}", f"pid {holder.pid}", "since ", "expires "):
        assert part in message


def test_killed_holder_is_taken_over_after_ttl(backend: Backend, writers: list[Writer]) -> None:
    holder = spawn(writers, backend, "run-crashed", ttl=1.5).ready()
    holder.send("go")
    held = holder.result()
    assert held["won"] == "run-crashed"
    os.kill(holder.proc.pid, signal.SIGKILL)
    holder.proc.wait(30)
    with pytest.raises(zarrcore.errors.WriterBusy, match="run-crashed"):
        zarrcore.claim_writer(backend.store, "arr", owner="run-next", ttl=5.0)
    with zarrcore.claim_writer(backend.store, "arr", owner="run-next", ttl=5.0, wait=20.0) as claim:
        assert time.time() >= held["expires"]
        assert claim.info.generation == held["generation"] + 1
        assert zarrcore.current_writer(backend.store, "arr").owner == "run-next"  # type: ignore[union-attr]


def test_racing_takers_after_expiry_exactly_one_wins(backend: Backend, writers: list[Writer]) -> None:
    for round_ in range(3):
        abandoned = zarrcore.claim_writer(backend.store, "arr", owner=f"crashed-{round_}", ttl=1.0)
        wait_until(lambda: zarrcore.current_writer(backend.store, "arr") is None, timeout=10, what="expiry")
        results = race(writers, backend, [f"taker-{round_}-{i}" for i in range(3)], ttl=30.0)
        winners = [r["won"] for r in results if "won" in r]
        assert len(winners) == 1, results
        assert all(r["holder"] == winners[0] for r in results if "busy" in r)
        with pytest.raises(ClaimLost, match=f"lapsed before it was renewed; it is now held by owner {winners[0]!r}"):
            abandoned.renew()
        for w in writers[-3:]:
            if w.owner == winners[0]:
                w.send("release")
                assert w.line() == "released"
        assert zarrcore.current_writer(backend.store, "arr") is None


def test_same_owner_reenters_and_the_old_claim_is_lost(backend: Backend, writers: list[Writer]) -> None:
    first = zarrcore.claim_writer(backend.store, "arr", owner="run-1", ttl=30.0)
    rerun = spawn(writers, backend, "run-1", ttl=30.0).ready()
    rerun.send("go")
    assert rerun.result()["won"] == "run-1"
    with pytest.raises(ClaimLost, match="taken over"):
        first.renew()
    assert first.lost
    other = spawn(writers, backend, "run-2").ready()
    other.send("go")
    assert other.result()["holder"] == "run-1"


def test_wait_succeeds_when_the_holder_releases(backend: Backend, writers: list[Writer]) -> None:
    holder = spawn(writers, backend, "run-long", ttl=60.0).ready()
    holder.send("go")
    assert holder.result()["won"] == "run-long"
    waiter = spawn(writers, backend, "run-waiting", ttl=30.0, wait=40.0).ready()
    waiter.send("go")
    wait_until(lambda: zarrcore.current_writer(backend.store, "arr").owner == "run-long",  # type: ignore[union-attr]
               timeout=10, what="the holder's claim")
    holder.send("release")
    assert holder.line() == "released"
    started = time.monotonic()
    assert waiter.result()["won"] == "run-waiting"
    assert time.monotonic() - started < 30  # by the release, long before the holder's 60 s ttl
