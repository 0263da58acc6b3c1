"""Many flow runs at once on one Prefect work pool: two process workers (``prefect worker start``),
two deployments (ingest and copy), three runs on three arrays submitted together. Every run completes
and every array verifies; each worker ran some of them. (How much they slow each other is measured
in bench/flow_cost.py, not asserted here.)"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import zarrcore
from flows.sources import SyntheticSource
from flows.verify import verify
from tests.fixtures.flowkit import run_flow, wait_until
from tests.fixtures.paths import REPO

pytestmark = pytest.mark.usefixtures("prefect_api")

POOL = "zarrflow-many"
ENTRYPOINTS = {"ingest": "flows/ingest.py:ingest", "copy": "flows/copy.py:copy_array"}


def deploy(client: Any, flow: str) -> str:
    """A deployment of ``flow`` on the pool, run from the project folder; its ``flow/deployment`` name."""
    flow_id = client.create_flow_from_name(flow)
    pull = [{"prefect.deployments.steps.set_working_directory": {"directory": str(REPO)}}]
    client.create_deployment(flow_id=flow_id, name=f"{flow}-many", work_pool_name=POOL, path=str(REPO),
                             entrypoint=ENTRYPOINTS[flow], enforce_parameter_schema=True, pull_steps=pull)  # fmt: skip
    return f"{flow}/{flow}-many"


def start_worker(name: str, log: Path) -> subprocess.Popen[bytes]:
    from prefect.settings import PREFECT_API_URL

    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value()), "PYTHONPATH": str(REPO),
           "PREFECT_WORKER_QUERY_SECONDS": "1", "PREFECT_LOGGING_LEVEL": "INFO"}  # fmt: skip
    with log.open("wb") as out:
        argv = [sys.executable, "-m", "prefect", "worker", "start", "--pool", POOL, "--type", "process",
                "--name", name, "--limit", "2"]  # fmt: skip
        return subprocess.Popen(argv, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)


def stop(worker: subprocess.Popen[bytes]) -> None:
    worker.terminate()  # by our own PID
    try:
        worker.wait(15)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait(15)


def test_two_workers_on_one_pool_run_three_flow_runs_at_once(tmp_path: Path) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.deployments import run_deployment
    from prefect.exceptions import ObjectAlreadyExists

    data = np.arange(96 * 64, dtype="int32").reshape(96, 64)
    src = zarrcore.create(str(tmp_path / "src.zarr"), shape=data.shape, chunks=(16, 16), dtype="int32")
    src[...] = data
    with get_client(sync_client=True) as client:
        try:
            client.create_work_pool(WorkPoolCreate(name=POOL, type="process"))
        except ObjectAlreadyExists:
            pass
        names = {flow: deploy(client, flow) for flow in ENTRYPOINTS}
    logs = {n: tmp_path / f"{n}.log" for n in ("north", "south")}
    workers = {n: start_worker(n, log) for n, log in logs.items()}
    try:
        with get_client(sync_client=True) as client:
            wait_until(lambda: {w.name for w in client.read_workers_for_work_pool(POOL)} >= set(workers)
                       or any(w.poll() is not None for w in workers.values()), timeout=60, interval=0.2,
                       what="both workers polling the pool")  # fmt: skip
        assert all(w.poll() is None for w in workers.values()), [log.read_text()[-2000:] for log in logs.values()]
        sources = {a: {"kind": "synthetic", "shape": [128, 96], "dtype": "float32", "seed": s, "pattern": "noise"}
                   for s, a in enumerate(("a", "b"))}  # fmt: skip
        execution = {"max_chunks_per_batch": 4, "max_workers": 2}
        runs = {a: run_deployment(names["ingest"], timeout=0, parameters={
                    "source": sources[a], "destination": str(tmp_path / f"{a}.zarr"), "array": a,
                    "layout": {"chunks": [32, 32]}, "execution": execution}) for a in sources}  # fmt: skip
        runs |= {a: run_deployment(names["copy"], timeout=0, parameters={
                    "source": str(tmp_path / "src.zarr"), "destination": str(tmp_path / f"{a}.zarr"), "array": a,
                    "layout": {"chunks": [32, 32]}, "execution": execution}) for a in ("c",)}  # fmt: skip

        def final_states() -> dict[str, Any] | None:
            assert all(w.poll() is None for w in workers.values()), [log.read_text()[-2000:] for log in logs.values()]
            with get_client(sync_client=True) as client:
                states = {a: client.read_flow_run(r.id).state for a, r in runs.items()}
            return states if all(s is not None and s.is_final() for s in states.values()) else None

        states = wait_until(final_states, timeout=240, interval=0.5, what="the three runs to finish")
    finally:
        for worker in workers.values():
            stop(worker)
    assert all(s.is_completed() for s in states.values()), {a: (s.name, s.message) for a, s in states.items()}
    # a flow run's own output goes to the log of the worker that started it
    ran_by = {n: {a for a, r in runs.items() if f"Beginning flow run '{r.name}'" in log.read_text()}
              for n, log in logs.items()}  # fmt: skip
    assert sorted(a for ran in ran_by.values() for a in ran) == sorted(runs) and all(ran_by.values()), ran_by
    for a in runs:
        state, _ = run_flow(verify, destination=str(tmp_path / f"{a}.zarr"), array=a)
        assert state.is_completed(), state.message
    for a, spec in sources.items():
        expected = SyntheticSource(**spec).open().read((slice(0, 128), slice(0, 96)))  # type: ignore[arg-type]
        np.testing.assert_array_equal(zarrcore.open_array(str(tmp_path / f"{a}.zarr"), path=a)[...], expected)
    for a in ("c",):
        np.testing.assert_array_equal(zarrcore.open_array(str(tmp_path / f"{a}.zarr"), path=a)[...], data)
    print(f"runs per worker: {ran_by}")
