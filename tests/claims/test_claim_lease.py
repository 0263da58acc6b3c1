"""Writer claims in one process: renewal, release, cleanup, heartbeat, errors."""

from __future__ import annotations

import pickle
import time

import pytest

import zarrcore
from tests.fixtures.flowkit import wait_until
from zarrcore.claims import claims_prefix
from zarrcore.errors import ClaimLost, WriterBusy, ZarrcoreError
from zarrcore.storage import MemoryStore


def test_renewals_and_release_keep_a_bounded_number_of_objects() -> None:
    store = MemoryStore()
    claim = zarrcore.claim_writer(store, "a/b", owner="run", ttl=10.0, info={"flow_run": "x"})
    for _ in range(25):
        claim.renew()
    assert len(list(store.list(claims_prefix("a/b")))) <= 3
    assert claim.info.generation == 25
    assert zarrcore.current_writer(store, "a/b").info == {"flow_run": "x"}  # type: ignore[union-attr]
    claim.release()
    claim.release()
    assert zarrcore.current_writer(store, "a/b") is None
    assert claim.lost
    with pytest.raises(ClaimLost, match="released"):
        claim.renew()
    assert all(k.startswith("a/b/.zarrcore/claims/") for k in store.list(""))


def test_busy_error_is_typed_picklable_and_names_the_holder() -> None:
    store = MemoryStore()
    with zarrcore.claim_writer(store, "", owner="run-1", ttl=10.0, info={"flow_run": "gentle-fox"}):
        with pytest.raises(WriterBusy) as caught:
            zarrcore.claim_writer(store, "", owner="run-2")
        assert isinstance(caught.value, ZarrcoreError)
        again = pickle.loads(pickle.dumps(caught.value))
        assert type(again) is WriterBusy and str(again) == str(caught.value)
        assert again.holder.owner == "run-1"
        assert "flow_run gentle-fox" in str(again)
    assert zarrcore.claim_writer(store, "", owner="run-2").owner == "run-2"


def test_a_lapsed_claim_cannot_be_renewed() -> None:
    store = MemoryStore()
    claim = zarrcore.claim_writer(store, "a", owner="run", ttl=0.2)
    wait_until(lambda: claim.lost, timeout=5, what="the lease to lapse")
    with pytest.raises(ClaimLost, match="lapsed"):
        claim.renew()


def test_heartbeat_keeps_the_claim_and_flags_a_takeover() -> None:
    store = MemoryStore()
    with zarrcore.claim_writer(store, "a", owner="run", ttl=0.6, heartbeat=True) as claim:
        wait_until(lambda: claim.info.generation >= 4, timeout=10, what="renewals")  # > 2 ttl of beats
        assert not claim.lost
        with pytest.raises(WriterBusy):
            zarrcore.claim_writer(store, "a", owner="other")
        zarrcore.claim_writer(store, "a", owner="run", ttl=30.0)  # a rerun of the same owner
        wait_until(lambda: claim.lost, timeout=10, what="the heartbeat to notice")
        with pytest.raises(ClaimLost):
            claim.check()


def test_wait_times_out_with_writer_busy() -> None:
    store = MemoryStore()
    zarrcore.claim_writer(store, "a", owner="run-1", ttl=30.0)
    started = time.monotonic()
    with pytest.raises(WriterBusy, match="run-1"):
        zarrcore.claim_writer(store, "a", owner="run-2", wait=0.3, poll=0.05)
    assert 0.3 <= time.monotonic() - started < 5


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="owner"):
        zarrcore.claim_writer(MemoryStore(), "a", owner="")
    with pytest.raises(ValueError, match="ttl"):
        zarrcore.claim_writer(MemoryStore(), "a", owner="x", ttl=0)


@pytest.mark.parametrize("path", ["", "a"])
def test_an_overwrite_spares_the_writer_claims(path: str) -> None:
    store = MemoryStore()
    arr = zarrcore.create(store, path=f"{path}/x".strip("/"), shape=(4,), chunks=(2,), dtype="i4")
    arr[...] = 7
    with zarrcore.claim_writer(store, path, owner="run-1", ttl=30.0) as claim:
        before = {k for k in store.list("") if "/.zarrcore/claims/" in "/" + k}
        assert before and any(k.startswith(claims_prefix(path)) for k in before)  # the check sees claims
        zarrcore.create(store, path=path, shape=(3,), chunks=(3,), dtype="f8", overwrite=True)
        assert {k for k in store.list("") if "/.zarrcore/claims/" in "/" + k} == before
        assert zarrcore.current_writer(store, path).owner == "run-1"  # type: ignore[union-attr]
        assert not any("/x/" in "/" + k for k in store.list(""))  # everything else under the node is gone
        claim.renew()  # still ours
