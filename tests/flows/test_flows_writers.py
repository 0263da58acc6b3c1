"""One live writer per array in the ``ingest`` and ``copy`` flows, with real processes: a second run into
an array that a live run is writing fails before it writes anything, naming the other run; a SIGKILLed
writer's claim is taken over once it expires; a retry of the same flow run proceeds at once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr

import zarrcore
from flows.copy import copy_array
from flows.ingest import ingest
from flows.sources import SyntheticSource
from flows.writer import TTL_VARIABLE
from tests.fixtures import faultstore  # noqa: F401  (registers faulty://, the local destination)
from tests.fixtures.flowkit import count_chunk_writes, run_flow, wait_until
from tests.fixtures.paths import REPO

pytestmark = pytest.mark.usefixtures("prefect_api")

CHUNKS = [8, 8]
#: 64 chunks. In the first run's process a store wrapper over the real store (local disk or the real
#: server) holds chunk PUTs after the first few at a gate, so that run is live, holding its claim, for as
#: long as the test needs; the test then opens the gate and the run finishes.
SHAPE = [64, 64]
SERIAL = {"max_workers": 1, "chunk_concurrency": 1, "max_chunks_per_batch": 16}
RUNNER = """
import json, sys
import tests.fixtures.faultstore as faults  # registers faulty://
from flows.ingest import ingest
params, hold = json.loads(sys.argv[1]), json.loads(sys.argv[2])
if hold:
    faults.hold_puts(hold["scheme"], ("a/c/",), hold["after"], hold["gate"])
ingest(**params)
"""


def source(seed: int, shape: list[int]) -> dict[str, Any]:
    return {"kind": "synthetic", "shape": shape, "dtype": "float32", "seed": seed, "pattern": "noise"}


def data_of(seed: int, shape: list[int] = SHAPE) -> np.ndarray:
    return SyntheticSource(**source(seed, shape)).open().read(tuple(slice(0, n) for n in shape))  # type: ignore[arg-type]


class Destination:
    """An array's place on one backend: the URL and options a flow gets, and our own store on it."""

    def __init__(self, url: str, options: dict[str, Any]) -> None:
        self.url, self.options, self.shape = url, options, SHAPE
        self.store = zarrcore.open_store(url.replace("faulty://", "file://"), **options)

    def params(self, seed: int, **execution: Any) -> dict[str, Any]:
        return {"source": source(seed, self.shape), "destination": self.url, "array": "a", "layout": {"chunks": CHUNKS},
                "execution": {**SERIAL, **execution}, "storage_options": self.options}  # fmt: skip

    def chunks_stored(self) -> int:
        return sum(1 for _ in self.store.list("a/c/"))

    def holder(self) -> zarrcore.ClaimInfo | None:
        return zarrcore.current_writer(self.store, "a")

    def read(self) -> np.ndarray:
        return zarrcore.open_array(self.store, path="a")[...]


@pytest.fixture(params=["local", "s3", "gcs", "azure"])
def destination(request: pytest.FixtureRequest, tmp_path: Path, cloud: Any) -> Destination:
    if request.param == "local":
        return Destination(f"faulty://{tmp_path / 'store'}", {})
    url, options, _ = cloud(request.param)
    return Destination(url, options)


class Run:
    """An ingest flow run in a process of its own, which we started (and stop by its PID), whose chunk
    PUTs after the first ``after`` wait while the file ``gate`` exists (:meth:`release` deletes it)."""

    def __init__(self, dest: Destination, params: dict[str, Any], log: Path, *, after: int, **env: str) -> None:
        from prefect.settings import PREFECT_API_URL

        self.after, self.gate = after, log.with_suffix(".gate")
        self.gate.touch()
        hold = {"scheme": dest.url.split("://")[0], "after": after, "gate": str(self.gate)}

        environ = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value()), "PYTHONPATH": str(REPO),
                   "PREFECT_LOGGING_LEVEL": "ERROR", **env}  # fmt: skip
        self.log = log
        with log.open("wb") as out:
            argv = [sys.executable, "-c", RUNNER, json.dumps(params), json.dumps(hold)]
            self.proc = subprocess.Popen(argv, cwd=REPO, env=environ, stdout=out, stderr=subprocess.STDOUT)

    def running(self) -> bool:
        return self.proc.poll() is None

    def output(self) -> str:
        return self.log.read_text()[-3000:]

    def wait_for_claim(self, dest: Destination) -> zarrcore.ClaimInfo:
        """Wait until this run holds the claim and is held at its gate; return the claim."""
        wait_until(lambda: not self.running() or (dest.holder() is not None and dest.chunks_stored() >= self.after),
                   timeout=120, what="the first run writing")  # fmt: skip
        assert self.running(), f"the first run ended before the test could race it: {self.output()}"
        holder = dest.holder()
        assert holder is not None
        return holder

    def release(self) -> None:
        """Let the held PUTs go on."""
        self.gate.unlink(missing_ok=True)

    def stop(self) -> None:
        if self.running():
            self.proc.kill()
        self.proc.wait(30)


@pytest.fixture
def runs() -> Iterator[list[Run]]:
    started: list[Run] = []
    yield started
    for run in started:
        run.stop()


def test_a_second_ingest_fails_fast_while_the_first_writes(destination: Destination, runs: list[Run],
                                                           tmp_path: Path) -> None:  # fmt: skip
    first = Run(destination, destination.params(seed=1), tmp_path / "first.log", after=1)
    runs.append(first)
    holder = first.wait_for_claim(destination)
    with count_chunk_writes() as writes:
        state, _ = run_flow(ingest, **destination.params(seed=2))
    assert first.running(), "the first run ended while the second ran: the race did not happen"
    assert state.is_failed() and writes.total == 0, state.message
    message = str(state.result(raise_on_failure=False))
    assert "WriterBusy" in state.message and holder.owner in message and f"host {holder.host}" in message
    assert f"pid {holder.pid}" in message
    first.release()
    assert first.proc.wait(300) == 0, first.output()
    np.testing.assert_array_equal(destination.read(), data_of(1, destination.shape))  # the first run's, whole
    assert destination.holder() is None  # released at the end


def test_a_copy_into_an_array_being_written_fails_fast(tmp_path: Path, runs: list[Run]) -> None:
    dest = Destination(f"faulty://{tmp_path / 'store'}", {})
    src = zarr.create_array(str(tmp_path / "src.zarr"), shape=SHAPE, chunks=CHUNKS, dtype="float32")
    src[...] = data_of(3)
    first = Run(dest, dest.params(seed=1), tmp_path / "first.log", after=1)
    runs.append(first)
    holder = first.wait_for_claim(dest)
    with count_chunk_writes() as writes:
        state, _ = run_flow(copy_array, source=str(tmp_path / "src.zarr"), destination=dest.url, array="a",
                            execution=SERIAL)  # fmt: skip
    assert first.running() and state.is_failed() and writes.total == 0, state.message
    assert "WriterBusy" in state.message and holder.owner in str(state.result(raise_on_failure=False))
    first.release()
    assert first.proc.wait(300) == 0, first.output()
    np.testing.assert_array_equal(dest.read(), data_of(1))


def test_a_killed_writers_claim_is_taken_over_once_it_expires(destination: Destination, runs: list[Run],
                                                              tmp_path: Path) -> None:  # fmt: skip
    first = Run(destination, destination.params(seed=1), tmp_path / "first.log", after=20, **{TTL_VARIABLE: "8"})
    runs.append(first)
    holder = first.wait_for_claim(destination)
    first.stop()  # SIGKILL while holding the claim
    state, _ = run_flow(ingest, **destination.params(seed=2, max_workers=2, chunk_concurrency=8))
    if time.time() < holder.expires:  # the dead run's claim was still in force: refused, naming it
        assert state.is_failed() and holder.owner in str(state.result(raise_on_failure=False)), state.message
    else:  # slow machine: it expired first (the wait below is then not needed)
        assert state.is_completed(), state.message
    state, _ = run_flow(ingest, **destination.params(seed=2, max_workers=2, chunk_concurrency=8),
                        wait_for_writer_seconds=60)  # fmt: skip
    assert state.is_completed(), state.message
    assert time.time() >= holder.expires
    np.testing.assert_array_equal(destination.read(), data_of(2, destination.shape))  # none of the dead run's left
    assert destination.holder() is None


def test_a_retry_of_the_same_flow_run_proceeds_at_once(tmp_path: Path, runs: list[Run]) -> None:
    dest = Destination(f"faulty://{tmp_path / 'store'}", {})
    first = Run(dest, dest.params(seed=1), tmp_path / "first.log", after=20)  # the default ttl: 60 s
    runs.append(first)
    holder = first.wait_for_claim(dest)
    first.stop()
    from prefect import get_client
    from prefect.settings import PREFECT_API_URL
    from prefect.states import Crashed

    with get_client(sync_client=True) as client:  # what Prefect marks a run whose process died
        client.set_flow_run_state(holder.owner, Crashed(message="process killed"), force=True)

    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value()), "PYTHONPATH": str(REPO)}
    retry = subprocess.run([sys.executable, "-m", "prefect", "flow-run", "retry", holder.owner,
                            "--entrypoint", "tests/fixtures/faultstore.py:ingest"],
                           cwd=REPO, env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert retry.returncode == 0, retry.stdout + retry.stderr
    assert time.time() < holder.expires  # it did not wait for the dead process's claim to expire
    np.testing.assert_array_equal(dest.read(), data_of(1))
    assert dest.holder() is None
