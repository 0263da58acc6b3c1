"""Deployments: ``deployments/prefect.yaml`` deploys against the session's Prefect server with a process
work pool; a run with overridden parameters is executed by a real worker; parameters that break the
schema are refused before any run (or write) exists; ``deployments/serve.py`` declares the same."""

from __future__ import annotations

import os
import runpy
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr

from flows.sources import SyntheticSource
from tests.fixtures.flowkit import wait_until
from tests.fixtures.paths import REPO

pytestmark = pytest.mark.usefixtures("prefect_api")

POOL = "zarrflow-process"


def _env() -> dict[str, str]:
    from prefect.settings import PREFECT_API_URL

    return {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value()), "PYTHONPATH": str(REPO), "PWD": str(REPO),
            "PREFECT_LOGGING_LEVEL": "WARNING"}  # fmt: skip


def test_prefect_yaml_deploys_and_a_worker_runs_overridden_parameters(tmp_path: Path) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.deployments import run_deployment
    from prefect.exceptions import ObjectAlreadyExists

    with get_client(sync_client=True) as client:
        try:
            client.create_work_pool(WorkPoolCreate(name=POOL, type="process"))
        except ObjectAlreadyExists:
            pass
    command = ["deploy", "--all", "--prefect-file", "deployments/prefect.yaml"]
    deploy = subprocess.run([sys.executable, "-m", "prefect", "--no-prompt", *command],
                            cwd=REPO, env=_env(), capture_output=True, text=True, timeout=180)  # fmt: skip
    assert deploy.returncode == 0, deploy.stdout[-3000:] + deploy.stderr[-3000:]

    with get_client(sync_client=True) as client:
        deployments = {d.name: d for d in client.read_deployments()}
        assert {"ingest-nightly", "verify-hourly", "copy", "append-hourly"} <= set(deployments)
        assert deployments["append-hourly"].parameters["source"] == "data/incoming/*.nc"
        assert [s.schedule.interval.total_seconds() for s in deployments["append-hourly"].schedules] == [3600]  # type: ignore[union-attr]
        nightly = deployments["ingest-nightly"]
        assert nightly.work_pool_name == POOL and nightly.enforce_parameter_schema
        assert [s.schedule.cron for s in nightly.schedules] == ["0 2 * * *"]  # type: ignore[union-attr]
        assert [s.schedule.interval.total_seconds() for s in deployments["verify-hourly"].schedules] == [3600]  # type: ignore[union-attr]
        assert deployments["copy"].schedules == []
        for d in deployments.values():  # no scheduled run may reach the worker below
            for s in d.schedules:
                client.update_deployment_schedule(d.id, s.id, active=False)

    dest = tmp_path / "deployed.zarr"
    with pytest.raises(Exception, match="Validation failed") as refused:
        run_deployment("ingest/ingest-nightly", parameters={"destination": str(dest), "execution": {"max_workers": 0}},
                       timeout=0)  # fmt: skip
    assert "max_workers" in str(refused.value)
    source = {"kind": "synthetic", "shape": [40, 30], "dtype": "int16", "seed": 9}
    run = run_deployment("ingest/ingest-nightly", timeout=0, parameters={
        "source": source, "destination": str(dest), "array": "override", "layout": {"chunks": [16, 16]}})  # fmt: skip
    assert not dest.exists()

    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        worker = subprocess.Popen([sys.executable, "-m", "prefect", "worker", "start", "--pool", POOL, "--limit", "1"],
                                  cwd=REPO, env=_env(), stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    def final_state() -> Any:
        with get_client(sync_client=True) as client:
            state = client.read_flow_run(run.id).state
        assert worker.poll() is None, log.read_text()[-3000:]
        return state if state is not None and state.is_final() else None

    try:
        state = wait_until(final_state, timeout=150, interval=0.5, what="the deployed run to finish")
    finally:
        worker.terminate()  # by our own PID
        try:
            worker.wait(15)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(15)
    assert state is not None and state.is_completed(), f"{state}\n{log.read_text()[-3000:]}"
    expected = SyntheticSource(**source).open().read((slice(0, 40), slice(0, 30)))  # type: ignore[arg-type]
    np.testing.assert_array_equal(zarr.open_group(str(dest), mode="r")["override"][:], expected)


def test_serve_script_declares_the_same_deployments() -> None:
    module = runpy.run_path(str(REPO / "deployments" / "serve.py"))
    served = {d.name: d for d in module["load_deployments"]()}
    assert set(served) == {"ingest-nightly", "verify-hourly", "copy", "append-hourly"}
    assert served["append-hourly"].parameters["layout"] == {"chunks": {"time": 24}}
    assert served["ingest-nightly"].parameters["layout"] == {"chunks": [512, 512]}
    assert served["ingest-nightly"].schedules[0].schedule.cron == "0 2 * * *"
    assert served["verify-hourly"].schedules[0].schedule.interval.total_seconds() == 3600
    assert served["copy"].entrypoint.endswith(":copy_array") or served["copy"].flow_name == "copy"
