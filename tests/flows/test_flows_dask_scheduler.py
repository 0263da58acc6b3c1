"""Losing the Dask scheduler of an existing cluster mid-run: the flow run fails and says why, and a
new run with the same parameters on a new cluster finishes, rewriting only the batches that were in
flight (finished batches are cache hits: the ledger is not tied to a run or a cluster)."""

from __future__ import annotations

import os
import re
import signal
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from flows.ingest import ingest
from flows.verify import verify
from tests.fixtures.faultstore import write_plan
from tests.fixtures.flowkit import run_flow, wait_until
from tests.flows.test_flows_dask_cluster import on_cluster, start_cluster

pytestmark = pytest.mark.usefixtures("prefect_api")

WORKERS, THREADS, PER_BATCH = 1, 2, 16


def chunk_puts(journal: Path) -> list[str]:
    return [k for k in journal.read_text().split() if "/c/" in k] if journal.exists() else []


def test_a_killed_scheduler_fails_the_run_and_a_rerun_on_a_new_cluster_redoes_only_batches_in_flight(
    tmp_path: Path,
) -> None:
    import dask
    from prefect.client.orchestration import get_client

    root, journal = tmp_path / "store", tmp_path / "puts.log"
    write_plan(root, delay={"prefixes": ["a/c/"], "seconds": 0.02}, journal=str(journal))
    source = {"kind": "synthetic", "shape": [128, 128], "dtype": "float32", "seed": 5, "pattern": "noise"}
    params = {"source": source, "destination": f"faulty://{root}", "array": "a", "layout": {"chunks": [8, 8]}}
    execution = {"max_chunks_per_batch": PER_BATCH, "chunk_concurrency": 1}

    first = start_cluster(tmp_path / "dask-1", workers=WORKERS, threads=THREADS)
    ended: list[Any] = []
    run = threading.Thread(target=lambda: ended.append(run_flow(ingest, **params,
                                                                execution=on_cluster(first, **execution))))  # fmt: skip
    # the run's Dask client gives up reconnecting to a lost scheduler after 3 s (default 30)
    with dask.config.set({"distributed.comm.timeouts.connect": "3s"}):
        try:
            run.start()
            wait_until(lambda: len(chunk_puts(journal)) >= 64 or not run.is_alive(), timeout=180,
                       what="64 chunks written")  # fmt: skip
            assert run.is_alive(), ended
            os.kill(first.scheduler.pid, signal.SIGKILL)
        finally:
            first.stop()  # its workers lost their scheduler: stopped by the PIDs we started them with
            run.join(120)
    assert not run.is_alive() and ended
    state, flow_run_id = ended[0]
    assert state.is_failed(), state
    with get_client(sync_client=True) as client:
        recorded = client.read_flow_run(flow_run_id).state
    assert recorded is not None and recorded.is_failed()
    print(f"the run's state message: {recorded.message}")
    message = recorded.message or ""
    assert f"SchedulerLost: lost the connection to the Dask scheduler {first.address}" in message, message
    finished = re.search(r"with (\d+) of 16 batches finished", message)
    assert finished, message
    assert "scheduler-connection-lost" in message and "retry the flow run" in message, message
    before = Counter(chunk_puts(journal))
    assert 64 <= len(before) < 256  # a positive control: the first run was cut short
    assert int(finished[1]) * PER_BATCH <= len(before)  # as the API recorded them: never more than written

    write_plan(root, journal=str(journal))  # the rerun at full speed
    second = start_cluster(tmp_path / "dask-2", workers=WORKERS, threads=THREADS)
    try:
        state, _ = run_flow(ingest, **params, execution=on_cluster(second, **execution))
        assert state.is_completed(), state.message
    finally:
        second.stop()
    after = Counter(chunk_puts(journal))
    assert len(after) == 256
    rewritten = sum(after[k] - before[k] for k in before)  # chunks the rerun put again
    assert rewritten <= WORKERS * THREADS * PER_BATCH, f"{rewritten} chunks rewritten"
    summary = state.result()["targets"][0]
    assert summary["chunks_written"] >= 256 - len(before)
    # the batches the message counts as finished (their result records stored) were all cache hits
    assert summary["chunks_skipped"] >= int(finished[1]) * PER_BATCH
    write_plan(root)
    state, _ = run_flow(verify, destination=f"faulty://{root}", array="a")
    assert state.is_completed(), state.message
    print(f"lost scheduler: {len(before)} chunks before, {rewritten} rewritten by the rerun")
