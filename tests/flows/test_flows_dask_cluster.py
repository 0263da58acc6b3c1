"""The flows on an existing Dask cluster, as a user's looks: a ``dask scheduler`` and ``dask worker``
processes started on their own, the flows given its address. ingest, copy and append land the same
bytes as the thread runner, on local disk and S3; a worker SIGKILLed while batches run costs only the
batches it had in flight, and the run completes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr

import zarrcore
from flows.append import append
from flows.cli import main as zarrflow
from flows.copy import copy_array
from flows.ingest import ingest
from flows.verify import verify
from tests.datasets.pieces import expected, opened
from tests.fixtures.faultstore import write_plan
from tests.fixtures.flowkit import run_flow, wait_until
from tests.fixtures.netcdf_files import write_series
from tests.fixtures.paths import REPO

pytestmark = pytest.mark.usefixtures("prefect_api")

@dataclass
class Cluster:
    """A scheduler and workers, each a process of its own that we started (and stop by PID)."""

    address: str
    scheduler: subprocess.Popen[bytes]
    workers: list[subprocess.Popen[bytes]]

    def stop(self) -> None:
        for proc in [*self.workers, self.scheduler]:
            if proc.poll() is None:
                proc.kill()
            proc.wait(30)


def start_cluster(folder: Path, workers: int = 2, threads: int = 2, **env: str) -> Cluster:
    """Workers get ``env`` (credentials, as a user's cluster has its own) and preload ``faulty://``."""
    from distributed import Client
    from prefect.settings import PREFECT_API_URL

    folder.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(REPO), "PREFECT_API_URL": str(PREFECT_API_URL.value()),
           "PREFECT_LOGGING_LEVEL": "WARNING", **env}  # fmt: skip
    spec = folder / "scheduler.json"
    dask = str(Path(sys.executable).parent / "dask")
    log = (folder / "scheduler.log").open("wb")
    argv = [dask, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard", "--scheduler-file", str(spec)]
    scheduler = subprocess.Popen(argv, env=env, cwd=REPO, stdout=log, stderr=log)
    wait_until(lambda: (spec.exists() and spec.stat().st_size > 0) or scheduler.poll() is not None, timeout=60,
               what="the scheduler's address")  # fmt: skip
    address = json.loads(spec.read_text())["address"]
    procs = []
    for n in range(workers):
        wlog = (folder / f"worker-{n}.log").open("wb")
        procs.append(subprocess.Popen([dask, "worker", address, "--nthreads", str(threads), "--nworkers", "1",
                                       "--no-dashboard", "--host", "127.0.0.1", "--name", f"w{n}",
                                       "--preload", "tests.fixtures.faultstore"],
                                      env=env, cwd=REPO, stdout=wlog, stderr=wlog))  # fmt: skip
    cluster = Cluster(address, scheduler, procs)
    try:
        with Client(address, timeout=60) as client:
            client.wait_for_workers(workers, timeout=120)
    except BaseException:
        cluster.stop()
        raise
    return cluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, prefect_api: str, s3_server: Any) -> Iterator[Cluster]:
    started = start_cluster(tmp_path_factory.mktemp("dask"), AWS_ACCESS_KEY_ID=s3_server.access_key,
                            AWS_SECRET_ACCESS_KEY=s3_server.secret_key)  # fmt: skip
    yield started
    started.stop()


def stored(store: zarrcore.Store, below: str = "") -> dict[str, bytes]:
    """Every object but the flows' bookkeeping (ledger and result ids differ per run)."""
    return {k: store.get(k) for k in sorted(store.list(below)) if ".zarrcore/" not in k}


def on_cluster(cluster: Cluster, **execution: Any) -> dict[str, Any]:
    return {"task_runner": "dask", "dask_address": cluster.address, **execution}


@pytest.mark.parametrize("backend", ["local", "s3"])
def test_ingest_on_an_existing_cluster_writes_the_thread_runners_bytes(backend: str, cluster: Cluster,
                                                                      tmp_path: Path, cloud: Any) -> None:  # fmt: skip
    if backend == "s3":
        url, options, _ = cloud("s3")
    else:
        url, options = str(tmp_path / "out.zarr"), {}
    source = {"kind": "synthetic", "shape": [96, 80], "dtype": "float32", "seed": 4, "pattern": "noise"}
    common = {"source": source, "layout": {"chunks": [16, 16]}, "storage_options": options}
    state, _ = run_flow(ingest, destination=url, array="threads", **common,
                        execution={"max_workers": 2, "max_chunks_per_batch": 4})  # fmt: skip
    assert state.is_completed(), state.message
    state, _ = run_flow(ingest, destination=url, array="dask", **common,
                        execution=on_cluster(cluster, max_chunks_per_batch=4))  # fmt: skip
    assert state.is_completed(), state.message
    assert state.result()["targets"][0]["chunks_written"] == 30
    store = zarrcore.open_store(url, **options)
    by_thread, by_dask = stored(store, "threads/"), stored(store, "dask/")
    assert len(by_dask) == 31 and list(by_dask.values()) == list(by_thread.values())


def test_copy_and_the_cli_on_an_existing_cluster(cluster: Cluster, tmp_path: Path) -> None:
    data = np.arange(60 * 40, dtype="int32").reshape(60, 40)
    src = zarrcore.create(str(tmp_path / "src.zarr"), shape=data.shape, chunks=(10, 10), dtype="int32")
    src[...] = data
    state, _ = run_flow(copy_array, source=str(tmp_path / "src.zarr"), destination=str(tmp_path / "dst.zarr"),
                        array="a", layout={"chunks": [20, 20]}, execution=on_cluster(cluster))  # fmt: skip
    assert state.is_completed(), state.message
    np.testing.assert_array_equal(zarrcore.open_array(str(tmp_path / "dst.zarr"), path="a")[...], data)
    code = zarrflow(["ingest", "synthetic:64x64:float32:2", str(tmp_path / "cli.zarr"), "--chunks", "16,16",
                     "--dask-address", cluster.address])  # fmt: skip
    assert code == 0
    assert zarrflow(["verify", str(tmp_path / "cli.zarr"), "--dask-address", cluster.address]) == 0


def test_append_on_an_existing_cluster_equals_the_thread_runners(cluster: Cluster, tmp_path: Path) -> None:
    files = write_series(tmp_path / "raw", "2001-01-01", files=4, steps=5)
    pattern = str(tmp_path / "raw" / "*.nc")
    layout = {"chunks": {"time": 4, "lat": 8, "lon": 16}}
    for name, execution in (("threads", {"max_workers": 2}), ("dask", on_cluster(cluster))):
        state, _ = run_flow(append, source=pattern, destination=str(tmp_path / f"{name}.zarr"), layout=layout,
                            execution={**execution, "max_chunks_per_batch": 3})  # fmt: skip
        assert state.is_completed(), state.message
    xr.testing.assert_identical(opened(tmp_path / "dask.zarr"), expected(files))
    threads, dask = (zarrcore.open_store(str(tmp_path / f"{n}.zarr")) for n in ("threads", "dask"))
    assert stored(dask).keys() == stored(threads).keys()
    chunks = [k for k in stored(dask) if "/c/" in k]
    assert chunks and all(dask.get(k) == threads.get(k) for k in chunks)


def test_a_worker_killed_while_batches_run_costs_only_its_batches(tmp_path: Path) -> None:
    cluster = start_cluster(tmp_path / "dask", workers=2, threads=2)
    try:
        root, journal = tmp_path / "store", tmp_path / "puts.log"
        write_plan(root, delay={"prefixes": ["a/c/"], "seconds": 0.02}, journal=str(journal))
        params = {"source": {"kind": "synthetic", "shape": [256, 256], "dtype": "float32", "seed": 9,
                             "pattern": "noise"},
                  "destination": f"faulty://{root}", "array": "a", "layout": {"chunks": [8, 8]},
                  "execution": on_cluster(cluster, max_chunks_per_batch=16, chunk_concurrency=1)}  # fmt: skip
        from tests.flows.test_flows_writers import RUNNER

        log = (tmp_path / "run.log").open("wb")
        env = {**os.environ, "PYTHONPATH": str(REPO), "PREFECT_LOGGING_LEVEL": "ERROR"}
        from prefect.settings import PREFECT_API_URL

        env["PREFECT_API_URL"] = str(PREFECT_API_URL.value())
        run = subprocess.Popen([sys.executable, "-c", RUNNER, json.dumps(params), "null"], cwd=REPO, env=env,
                               stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
        chunk_puts = lambda: [k for k in journal.read_text().split() if "/c/" in k] if journal.exists() else []  # noqa: E731
        wait_until(lambda: len(chunk_puts()) >= 200 or run.poll() is not None, timeout=180, what="200 chunks written")
        assert run.poll() is None, (tmp_path / "run.log").read_text()[-3000:]
        os.kill(cluster.workers[0].pid, signal.SIGKILL)  # a lost worker: its batches are rescheduled
        from distributed import Client

        with Client(cluster.address, timeout=60) as client:  # the scheduler saw it go
            wait_until(lambda: len(client.scheduler_info()["workers"]) == 1, timeout=120, what="the worker's loss")
        write_plan(root, journal=str(journal))  # the rest at full speed
        assert run.wait(600) == 0, (tmp_path / "run.log").read_text()[-3000:]
        counts = Counter(chunk_puts())
        rewritten = sum(n - 1 for n in counts.values())
        assert len(counts) == 1024
        # at most the dead worker's batches in flight: 2 threads x 16 chunks
        assert rewritten <= 2 * 16, f"{rewritten} chunk puts repeated"
        write_plan(root)
        state, _ = run_flow(verify, destination=f"faulty://{root}", array="a")
        assert state.is_completed(), state.message
        print(f"lost worker: {rewritten} chunk puts repeated of {sum(counts.values())}")
    finally:
        cluster.stop()
