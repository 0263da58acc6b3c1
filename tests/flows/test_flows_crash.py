"""Crash and resume: the process running an ingest is SIGKILLed at several points; a new run completes,
the array is exactly the source, and it rewrites at most the chunks of the batches that were in flight."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr

from flows.ingest import ingest
from flows.sources import SyntheticSource
from flows.writer import TTL_VARIABLE
from tests.fixtures.faultstore import write_plan
from tests.fixtures.flowkit import count_chunk_writes, run_flow, wait_until
from tests.fixtures.paths import REPO

SOURCE = {"kind": "synthetic", "shape": [96, 64], "dtype": "float64", "seed": 17, "pattern": "noise"}
WORKERS, PER_BATCH = 2, 4  # so at most 2 x 4 chunks are in flight
RUNNER = """
import json, sys
import tests.fixtures.faultstore  # registers faulty://
from flows.ingest import ingest
ingest(**json.loads(sys.argv[1]))
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


@pytest.mark.parametrize("kill_after", [0, 40, 88], ids=["after-metadata", "midway", "near-the-end"])
@pytest.mark.usefixtures("prefect_api")
def test_a_killed_run_resumes_without_redoing_finished_batches(tmp_path: Path, kill_after: int) -> None:
    from prefect.settings import PREFECT_API_URL

    root = tmp_path / "store"
    write_plan(root, delay={"prefixes": ["a/c/"], "seconds": 0.04})  # slow chunk PUTs: time to kill midway
    params = {"source": SOURCE, "destination": f"faulty://{root}", "array": "a", "layout": {"chunks": [8, 8]},
              "execution": {"max_workers": WORKERS, "max_chunks_per_batch": PER_BATCH}}  # fmt: skip
    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value()), "PYTHONPATH": str(REPO),
           "PREFECT_LOGGING_LEVEL": "ERROR", TTL_VARIABLE: "2"}  # fmt: skip
    log = tmp_path / "run.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-c", RUNNER, json.dumps(params)], cwd=REPO, env=env,
                                stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        def kill_point_or_end() -> bool:
            reached = (root / "a" / "zarr.json").exists() and len(stored_chunks(root)) >= kill_after
            return reached or proc.poll() is not None

        wait_until(kill_point_or_end, timeout=120, interval=0.01, what=f"{kill_after} chunks stored")
        assert proc.poll() is None, f"the run ended before the kill point: {log.read_text()[-2000:]}"
    finally:
        proc.kill()  # SIGKILL, by our own PID
        proc.wait(30)
    at_kill = stored_chunks(root)
    assert len(at_kill) < 96

    write_plan(root)  # no more delay
    with count_chunk_writes() as writes:
        state, _ = run_flow(ingest, **params, wait_for_writer_seconds=60)  # once the dead run's claim expires
    assert state.is_completed(), state.message
    expected = SyntheticSource(**SOURCE).open().read((slice(0, 96), slice(0, 64)))  # type: ignore[arg-type]
    np.testing.assert_array_equal(zarr.open_group(str(root), mode="r")["a"][:], expected)
    rewritten = [k for k in writes.keys if k in at_kill]
    assert len(rewritten) <= WORKERS * PER_BATCH, f"{len(rewritten)} finished chunks were rewritten"
    assert set(writes.keys) | set(at_kill) == set(stored_chunks(root))
    after = stored_chunks(root)
    assert all(after[k] == ino for k, ino in at_kill.items() if k not in writes.keys)  # untouched
