"""Losing the Dask scheduler of an existing cluster mid-run: the flow run fails and says why, and a
new run with the same parameters on a new cluster finishes, rewriting only the batches that were in
flight (finished batches are cache hits: the ledger is not tied to a run or a cluster)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from uuid import UUID

import pytest

from flows.ingest import ingest
from flows.verify import verify
from tests.fixtures.faultstore import write_plan
from tests.fixtures.flowkit import run_flow, wait_until
from tests.fixtures.paths import REPO
from tests.flows.test_flows_dask_cluster import on_cluster, start_cluster

pytestmark = pytest.mark.usefixtures("prefect_api")

#: Runs ingest in a process of its own; prints the flow run's id and its final state.
RUNNER = """
import json, sys
import tests.fixtures.faultstore  # registers faulty://
from flows.ingest import ingest
state = ingest(**json.loads(sys.argv[1]), return_state=True)
print(json.dumps({"id": str(state.state_details.flow_run_id), "type": state.type.value, "message": state.message}))
"""

WORKERS, THREADS, PER_BATCH = 2, 2, 16


def chunk_puts(journal: Path) -> list[str]:
    return [k for k in journal.read_text().split() if "/c/" in k] if journal.exists() else []


def test_a_killed_scheduler_fails_the_run_and_a_rerun_on_a_new_cluster_redoes_only_batches_in_flight(
    tmp_path: Path,
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL

    root, journal = tmp_path / "store", tmp_path / "puts.log"
    write_plan(root, delay={"prefixes": ["a/c/"], "seconds": 0.02}, journal=str(journal))
    source = {"kind": "synthetic", "shape": [128, 256], "dtype": "float32", "seed": 5, "pattern": "noise"}
    params = {"source": source, "destination": f"faulty://{root}", "array": "a", "layout": {"chunks": [8, 8]}}
    execution = {"max_chunks_per_batch": PER_BATCH, "chunk_concurrency": 1}
    # the run's Dask client gives up reconnecting to a lost scheduler after 5 s (default 30)
    env = {**os.environ, "PYTHONPATH": str(REPO), "PREFECT_LOGGING_LEVEL": "ERROR",
           "PREFECT_API_URL": str(PREFECT_API_URL.value()),
           "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "5"}  # fmt: skip

    first = start_cluster(tmp_path / "dask-1", workers=WORKERS, threads=THREADS)
    try:
        argv = [sys.executable, "-c", RUNNER, json.dumps({**params, "execution": on_cluster(first, **execution)})]
        with (tmp_path / "run.log").open("wb") as log:
            run = subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=log)
        wait_until(lambda: len(chunk_puts(journal)) >= 100 or run.poll() is not None, timeout=180,
                   what="100 chunks written")  # fmt: skip
        assert run.poll() is None, (tmp_path / "run.log").read_text()[-3000:]
        os.kill(first.scheduler.pid, signal.SIGKILL)
    finally:
        first.stop()  # its workers lost their scheduler: stopped by the PIDs we started them with
    out, _ = run.communicate(timeout=300)
    assert run.returncode == 0, (tmp_path / "run.log").read_text()[-3000:]
    ended = json.loads(out.decode().strip().splitlines()[-1])
    assert ended["type"] == "FAILED", ended
    with get_client(sync_client=True) as client:
        recorded = client.read_flow_run(UUID(ended["id"])).state
    assert recorded is not None and recorded.is_failed()
    print(f"the run's state message: {recorded.message}")
    message = recorded.message or ""
    assert f"SchedulerLost: lost the connection to the Dask scheduler {first.address}" in message, message
    finished = re.search(r"with (\d+) of 32 batches finished", message)
    assert finished, message
    assert "scheduler-connection-lost" in message and "retry the flow run" in message, message
    before = Counter(chunk_puts(journal))
    assert 100 <= len(before) < 512  # a positive control: the first run was cut short
    assert 0 < int(finished[1]) * PER_BATCH <= len(before)

    second = start_cluster(tmp_path / "dask-2", workers=WORKERS, threads=THREADS)
    try:
        state, _ = run_flow(ingest, **params, execution=on_cluster(second, **execution))
        assert state.is_completed(), state.message
    finally:
        second.stop()
    after = Counter(chunk_puts(journal))
    assert len(after) == 512
    rewritten = sum(after[k] - before[k] for k in before)  # chunks the rerun put again
    assert rewritten <= WORKERS * THREADS * PER_BATCH, f"{rewritten} chunks rewritten"
    assert state.result()["targets"][0]["chunks_written"] >= 512 - len(before)
    write_plan(root)
    state, _ = run_flow(verify, destination=f"faulty://{root}", array="a")
    assert state.is_completed(), state.message
    print(f"lost scheduler: {len(before)} chunks before, {rewritten} rewritten by the rerun")
