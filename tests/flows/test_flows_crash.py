"""Crash and resume: the process running an ingest is SIGKILLed at several points; a new run, or a retry of
the killed run, completes, the array is exactly the source, and it rewrites at most the chunks of the
batches that were in flight. A retried run keeps no task run Running and one true progress artifact."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import numpy as np
import pytest
import zarr

from flows.ingest import ingest
from flows.sources import SyntheticSource
from flows.writer import TTL_VARIABLE
from tests.fixtures.faultstore import write_plan
from tests.fixtures.flowkit import artifacts, count_chunk_writes, run_flow, task_runs, wait_until
from tests.fixtures.paths import REPO

SOURCE = {"kind": "synthetic", "shape": [96, 64], "dtype": "float64", "seed": 17, "pattern": "noise"}
WORKERS, PER_BATCH = 2, 4  # so at most 2 x 4 chunks are in flight
RUNNER = """
import json, sys
import tests.fixtures.faultstore  # registers faulty://
from flows.ingest import ingest
ingest.with_options(flow_run_name=sys.argv[2])(**json.loads(sys.argv[1]))
"""


def stored_chunks(root: Path) -> dict[str, int]:
    """Chunk key -> inode of the chunks stored now (temporary files of writes in progress left out)."""
    found = {}
    for dirpath, _, names in os.walk(root / "a" / "c"):
        for name in names:
            if not name.startswith(".zarrcore-tmp-"):
                path = Path(dirpath, name)
                with contextlib.suppress(FileNotFoundError):
                    found[str(path.relative_to(root))] = path.stat().st_ino
    return found


def _flow_run(name: str) -> Any:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName

    with get_client(sync_client=True) as client:
        found = client.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[name])))
    return found[0] if found else None


def _progress(run_id: UUID) -> tuple[int, list[Any]]:
    """Batches the run's progress artifact says are done, and every progress artifact of the run."""
    found = artifacts(run_id, "ingest-progress")
    said = re.search(r"(\d+) of \d+ batches", found[-1].description or "") if found else None
    return (int(said[1]) if said else -1), found


def _retry(run_id: UUID) -> Any:
    """What ``prefect flow-run retry ID --entrypoint ...`` does, in this process: the run, marked Crashed
    (as the heartbeat automation of docs/flows.md does), is scheduled again and run with its own parameters."""
    from prefect.client.orchestration import get_client
    from prefect.flow_engine import run_flow as run_existing
    from prefect.states import Crashed, Scheduled

    with get_client(sync_client=True) as client:
        client.set_flow_run_state(run_id, Crashed(message="no heartbeat: the process is gone"), force=True)
        client.set_flow_run_state(run_id, Scheduled(message="retried"), force=True)
        flow_run = client.read_flow_run(run_id)
    return run_existing(flow=ingest, flow_run=flow_run, parameters=flow_run.parameters, return_type="state")


@pytest.mark.parametrize(("kill_after", "resume"), [(0, "new run"), (40, "retry"), (88, "retry")],
                         ids=["after-metadata", "midway-retried", "near-the-end-retried"])  # fmt: skip
@pytest.mark.usefixtures("prefect_api")
def test_a_killed_run_resumes_without_redoing_finished_batches(tmp_path: Path, kill_after: int, resume: str) -> None:
    from prefect.settings import PREFECT_API_URL

    root = tmp_path / "store"
    write_plan(root, delay={"prefixes": ["a/c/"], "seconds": 0.04})  # slow chunk PUTs: time to kill midway
    params = {"source": SOURCE, "destination": f"faulty://{root}", "array": "a", "layout": {"chunks": [8, 8]},
              "execution": {"max_workers": WORKERS, "max_chunks_per_batch": PER_BATCH}}  # fmt: skip
    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value()), "PYTHONPATH": str(REPO),
           "PREFECT_LOGGING_LEVEL": "ERROR", TTL_VARIABLE: "2"}  # fmt: skip
    name = f"killed-{uuid4().hex}"
    log = tmp_path / "run.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-c", RUNNER, json.dumps(params), name], cwd=REPO, env=env,
                                stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    try:

        said = resume != "retry"  # a retry is killed once the progress artifact has said a batch finished

        def kill_point_or_end() -> bool:
            nonlocal said
            stored = len(stored_chunks(root)) if (root / "a" / "zarr.json").exists() else -1
            if not said and stored >= PER_BATCH:
                # its thread sends the first finished batch at once, but a loaded API may take a while
                run = _flow_run(name)
                said = run is not None and _progress(run.id)[0] >= 1
            return (stored >= kill_after and said) or proc.poll() is not None

        waited_for = f"{kill_after} chunks stored" + (" and the progress artifact sent" if resume == "retry" else "")
        wait_until(kill_point_or_end, timeout=120, interval=0.01, what=waited_for)
        assert proc.poll() is None, f"the run ended before the kill point: {log.read_text()[-2000:]}"
    finally:
        proc.kill()  # SIGKILL, by our own PID
        proc.wait(30)
    at_kill = stored_chunks(root)
    assert len(at_kill) < 96

    write_plan(root)  # no more delay
    with count_chunk_writes() as writes:
        if resume == "new run":
            state, _ = run_flow(ingest, **params, wait_for_writer_seconds=60)  # once the dead run's claim expires
        else:
            killed = _flow_run(name)
            said, _ = _progress(killed.id)
            finished = len(list((root / "a" / ".zarrcore" / "results").iterdir()))  # the ledger's records
            assert 1 <= said <= finished, f"the killed attempt's progress says {said}, {finished} batches finished"
            state = _retry(killed.id)
    assert state.is_completed(), state.message
    expected = SyntheticSource(**SOURCE).open().read((slice(0, 96), slice(0, 64)))  # type: ignore[arg-type]
    np.testing.assert_array_equal(zarr.open_group(str(root), mode="r")["a"][:], expected)
    rewritten = [k for k in writes.keys if k in at_kill]
    assert len(rewritten) <= WORKERS * PER_BATCH, f"{len(rewritten)} finished chunks were rewritten"
    assert set(writes.keys) | set(at_kill) == set(stored_chunks(root))
    after = stored_chunks(root)
    assert all(after[k] == ino for k, ino in at_kill.items() if k not in writes.keys)  # untouched
    if resume == "retry":
        batches = 96 // PER_BATCH
        runs = task_runs(killed.id, "write chunks")
        assert not [r.name for r in runs if not r.state.is_final()], "task runs left Running after the retry"
        assert all("earlier attempt" in (r.state.message or "") for r in runs if r.state.is_crashed())
        assert {r.name for r in runs if r.state.is_completed()} == {
            f"write chunks {n * PER_BATCH}-{(n + 1) * PER_BATCH}" for n in range(batches)}  # fmt: skip
        done, found = _progress(killed.id)
        assert len(found) == 1 and done == batches and found[0].data == 100.0, [a.description for a in found]
