"""How the cost of an ``ingest`` flow run grows with the number of chunks, and what two runs at once cost.

    python -m bench.flow_cost                          # 1,000, 10,000 and 100,000 chunks of 16 x 16 float32
    python -m bench.flow_cost --sizes 1000,10000 --pair-chunks 2000

For each size, in fresh processes against one Prefect server that the benchmark starts
(``prefect server start``, SQLite, its own PREFECT_HOME):

- bare ``Array.write_stream`` of the same chunks (``concurrency`` = the flow's chunks in flight);
- the ``ingest`` flow (synthetic source, local disk, zstd-1): wall time, task runs, Prefect API calls
  (HTTP requests and events the flow's process sends, counted by hooks on its httpx clients and its
  events client), the server's CPU (its process tree, until every task run is recorded), the growth
  of its database (``prefect.db`` + WAL), the flow process's peak RSS (``VmHWM``);
- a rerun of the completed ingest: wall time and chunk writes (zarrcore telemetry; must be 0).

Then "two runs at once": two ``prefect worker start`` process workers on one work pool, one ingest
deployment; one run alone, then two runs on different arrays submitted together (wall times from the
API, CPU of each worker's process tree), against what sharing the cores explains.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench._common import REPO, cores, machine, run_worker, versions
from bench.flows_overhead import LAYOUT, _count_writes, _grid_shape, _run_bare, _source

CHUNK = (16, 16)
WORKERS, CHUNK_CONCURRENCY = 4, 2  # batches in flight x chunks in flight per batch = the stream's 8


def _peak_rss_mib() -> float:
    with open("/proc/self/status") as status:  # this process's own peak
        return int(next(line.split()[1] for line in status if line.startswith("VmHWM:"))) / 1024


def _tree_cpu(pid: int) -> float:
    import psutil

    root = psutil.Process(pid)
    t = root.cpu_times()
    total = t.children_user + t.children_system  # its children that have ended (and been waited for)
    for p in [root, *root.children(recursive=True)]:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def _machine_busy() -> float:
    """CPU seconds the whole machine has been busy (all processes, from /proc/stat)."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:8]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def _db_bytes(home: Path) -> int:
    return sum(f.stat().st_size for f in home.glob("prefect.db*"))


class ApiCalls:
    """Counts the HTTP requests and the events this process sends to the Prefect API."""

    def __init__(self) -> None:
        self.http: Counter[str] = Counter()
        self.events = 0
        import httpx
        from prefect.events.clients import PrefectEventsClient

        counter = self
        send, asend, emit = httpx.Client.send, httpx.AsyncClient.send, PrefectEventsClient._emit

        def name(request: Any) -> str:
            return f"{request.method} {re.sub(r'[0-9a-f-]{36}', '{id}', request.url.path)}"

        def sync_send(self: Any, request: Any, *a: Any, **k: Any) -> Any:
            counter.http[name(request)] += 1
            return send(self, request, *a, **k)

        async def async_send(self: Any, request: Any, *a: Any, **k: Any) -> Any:
            counter.http[name(request)] += 1
            return await asend(self, request, *a, **k)

        async def counted_emit(self: Any, event: Any) -> None:
            counter.events += 1
            await emit(self, event)

        httpx.Client.send, httpx.AsyncClient.send = sync_send, async_send  # type: ignore[method-assign]
        PrefectEventsClient._emit = counted_emit  # type: ignore[method-assign]

    def take(self) -> dict[str, Any]:
        out = {"http": sum(self.http.values()), "events": self.events, "top": self.http.most_common(4)}
        self.http.clear()
        self.events = 0
        return out


def _settle(flow_run_id: Any, timeout: float = 300.0) -> int:
    """Wait until the server has every task run of the flow run in a final state; their number."""
    import httpx
    from prefect.events.worker import EventsWorker
    from prefect.settings import PREFECT_API_URL

    EventsWorker.drain_all()
    url, body = f"{PREFECT_API_URL.value()}/task_runs/count", {"flow_runs": {"id": {"any_": [str(flow_run_id)]}}}
    final = {"task_runs": {"state": {"type": {"any_": ["COMPLETED", "FAILED", "CRASHED", "CANCELLED"]}}}}
    deadline, seen = time.monotonic() + timeout, -1
    with httpx.Client(transport=httpx.HTTPTransport()) as http:  # counted too, but after take()
        while time.monotonic() < deadline:
            total = http.post(url, json=body).json()
            done = http.post(url, json={**body, **final}).json()
            if total and done == total and total == seen:
                return int(total)
            seen = total if done == total else -1
            time.sleep(0.5)
    return seen


def _ingest(dest: str, shape: tuple[int, ...], batch: int) -> tuple[float, Any]:
    from flows.ingest import ingest

    execution = {"max_workers": WORKERS, "chunk_concurrency": CHUNK_CONCURRENCY, "max_chunks_per_batch": batch}
    t0 = time.perf_counter()
    state = ingest(source=_source(shape), destination=dest, array="data", layout={**LAYOUT, "chunks": list(CHUNK)},
                   execution=execution, return_state=True)  # fmt: skip
    seconds = time.perf_counter() - t0
    if not state.is_completed():
        raise RuntimeError(f"ingest into {dest} ended {state.type}: {state.message}")
    return seconds, state


def flow_worker(a: dict[str, Any]) -> dict[str, Any]:
    """One size: a warm-up run, the timed first run, the timed rerun, in this process."""
    from zarrcore import telemetry

    calls = ApiCalls()
    grid = _grid_shape(a["nchunks"])
    shape = (grid[0] * CHUNK[0], grid[1] * CHUNK[1])
    root, home, server = Path(a["workdir"]), Path(a["home"]), a["server_pid"]
    _, warm = _ingest(str(root / "warm.zarr"), (4 * CHUNK[0], 4 * CHUNK[1]), a["batch"])  # imports, registration
    _settle(warm.state_details.flow_run_id)
    shutil.rmtree(root / "warm.zarr")
    out: dict[str, Any] = {"nchunks": a["nchunks"], "shape": shape, "batch": a["batch"]}
    dest = str(root / "flow.zarr")
    for run in ("first", "rerun"):
        calls.take()
        counts, handler = _count_writes()
        cpu0, db0 = _tree_cpu(server), _db_bytes(home)
        try:
            seconds, state = _ingest(dest, shape, a["batch"])
        finally:
            telemetry.detach(handler)
        api = calls.take()  # what the run sent; the settling below is not counted
        task_runs = _settle(state.state_details.flow_run_id)
        summary = state.result()["targets"][0]
        writes = counts["stored"] + counts["deleted"]
        out[run] = {"seconds": seconds, "task_runs": task_runs, "api": api, "writes": writes,
                    "server_cpu": _tree_cpu(server) - cpu0, "db_growth": _db_bytes(home) - db0,
                    "batches": summary.get("batches"), "chunks_written": summary["chunks_written"]}  # fmt: skip
    import zarrcore

    out["codecs"] = list(zarrcore.open_array(dest, path="data").metadata.codecs)  # the stream writes the same
    shutil.rmtree(dest)
    out["peak_rss_mib"] = _peak_rss_mib()
    return out


def bare_worker(a: dict[str, Any]) -> dict[str, Any]:
    """The same chunks, codecs and concurrency through ``Array.write_stream`` alone (after a warm-up)."""
    grid = _grid_shape(a["nchunks"])
    shape = (grid[0] * CHUNK[0], grid[1] * CHUNK[1])
    root = Path(a["workdir"])
    _run_bare(str(root / "warm-bare.zarr"), (4 * CHUNK[0], 4 * CHUNK[1]), CHUNK, 8, a["codecs"])
    seconds = _run_bare(str(root / "bare.zarr"), shape, CHUNK, WORKERS * CHUNK_CONCURRENCY, a["codecs"])
    for name in ("bare.zarr", "warm-bare.zarr"):
        shutil.rmtree(root / name)
    return {"seconds": seconds, "peak_rss_mib": _peak_rss_mib()}


# -- the server and the work pool ------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def prefect_server(home: Path) -> Iterator[tuple[subprocess.Popen[bytes], dict[str, str]]]:
    """``prefect server start`` on a free port, its database under ``home``; stopped by its PID."""
    import httpx

    port = _free_port()
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_SERVER_UI_ENABLED": "false", "PREFECT_LOGGING_LEVEL": "WARNING",
           "PYTHONPATH": str(REPO)}  # fmt: skip
    log = (home / "server.log").open("wb")
    argv = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(argv, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the Prefect server did not start: {(home / 'server.log').read_text()[-2000:]}")
            time.sleep(0.5)
        yield proc, {**env, "PREFECT_API_URL": url}
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(20)


def two_at_once(env: dict[str, str], work: Path, nchunks: int, batch: int) -> dict[str, Any]:
    """One ingest run alone on a pool of two process workers, then two at once; wall times and CPU."""
    os.environ.update(PREFECT_API_URL=env["PREFECT_API_URL"])
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.deployments import run_deployment

    pool = "bench-pool"
    with get_client(sync_client=True) as client:
        client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
        flow_id = client.create_flow_from_name("ingest")
        pull = [{"prefect.deployments.steps.set_working_directory": {"directory": str(REPO)}}]
        client.create_deployment(flow_id=flow_id, name="bench", work_pool_name=pool, path=str(REPO),
                                 entrypoint="flows/ingest.py:ingest", pull_steps=pull)  # fmt: skip
    wenv = {**env, "PREFECT_WORKER_QUERY_SECONDS": "1"}
    workers = [subprocess.Popen([sys.executable, "-m", "prefect", "worker", "start", "--pool", pool, "--type",
                                 "process", "--name", f"w{n}", "--limit", "1"], env=wenv, cwd=REPO,
                                stdout=(work / f"worker-{n}.log").open("wb"), stderr=subprocess.STDOUT)
               for n in range(2)]  # fmt: skip
    grid = _grid_shape(nchunks)
    shape = [grid[0] * CHUNK[0], grid[1] * CHUNK[1]]
    execution = {"max_workers": WORKERS, "chunk_concurrency": CHUNK_CONCURRENCY, "max_chunks_per_batch": batch}

    def submit(names: list[str]) -> dict[str, Any]:
        cpu0, t0, busy0 = sum(_tree_cpu(w.pid) for w in workers), time.time(), _machine_busy()
        runs = [run_deployment("ingest/bench", timeout=0, parameters={
            "source": _source(tuple(shape)), "destination": str(work / f"{n}.zarr"), "array": "data",
            "layout": {**LAYOUT, "chunks": list(CHUNK)}, "execution": execution}) for n in names]  # fmt: skip
        cpu, deadline = 0.0, time.monotonic() + 1800
        with get_client(sync_client=True) as client:
            while time.monotonic() < deadline:
                cpu = max(cpu, sum(_tree_cpu(w.pid) for w in workers) - cpu0)  # children's CPU, while they live
                done = [client.read_flow_run(r.id) for r in runs]
                if all(r.state is not None and r.state.is_final() for r in done):
                    break
                time.sleep(0.2)
        for r in done:
            if not r.state.is_completed():  # type: ignore[union-attr]
                raise RuntimeError(f"pool run {r.name} ended {r.state}")
        wall, others = time.time() - t0, _machine_busy() - busy0 - cpu  # others: the machine's CPU not ours
        # seconds: from submission to the run's end (worker poll, process start, the run); running: the run
        return {"runs": [{"seconds": r.end_time.timestamp() - t0, "running": r.total_run_time.total_seconds()}  # type: ignore[union-attr]
                         for r in done], "cpu": cpu / len(runs), "others_cores": max(0.0, others / wall)}  # fmt: skip

    try:
        time.sleep(3)  # let both workers register (not timed)
        alone = submit(["warm"])  # a first run also starts what the pool's runs share: not kept
        alone = submit(["alone"])
        pair = submit(["left", "right"])
    finally:
        for w in workers:
            w.terminate()
            try:
                w.wait(20)
            except subprocess.TimeoutExpired:
                w.kill()
                w.wait(20)
    return {"nchunks": nchunks, "alone": alone, "pair": pair}


# -- the driver ------------------------------------------------------------------------------------
def batch_for(nchunks: int, batch: int) -> int:
    """``batch`` if given; else the flow's default of 1024, lowered to give every worker several batches."""
    return batch or min(1024, -(-nchunks // (4 * WORKERS)))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="1000,10000,100000", help="numbers of chunks")
    p.add_argument("--batch", type=int, default=0,
                   help="execution.max_chunks_per_batch of the flow (default: 1024, or fewer so that there are "
                        f"at least {4 * WORKERS} batches: {WORKERS} workers with several batches each)")  # fmt: skip
    p.add_argument("--pair-chunks", type=int, default=10000, help="chunks of each run in 'two runs at once' (0: skip)")
    p.add_argument("--json", help="save the figures here")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.worker:
        args = json.loads(a.worker)
        print(json.dumps(flow_worker(args) if args["mode"] == "flow" else bare_worker(args)))
        return 0
    v = versions()
    print(f"machine: {machine()}; prefect {v['prefect']}, zarrcore {v['zarrcore']}")
    print(f"load before: {os.getloadavg()}", flush=True)
    rows, pair = [], None
    with tempfile.TemporaryDirectory(prefix="zarrcore-bench-cost-") as tmp:
        home, work = Path(tmp) / "prefect", Path(tmp) / "work"
        home.mkdir()
        work.mkdir()
        with prefect_server(home) as (server, env):
            os.environ.update({k: env[k] for k in ("PREFECT_API_URL", "PREFECT_HOME", "PREFECT_LOGGING_LEVEL",
                                                   "PREFECT_SERVER_ANALYTICS_ENABLED")})  # fmt: skip
            for n in [int(s) for s in a.sizes.split(",") if s]:
                common = {"nchunks": n, "workdir": str(work), "batch": batch_for(n, a.batch)}
                print(f"[cost] {n:,} chunks: ingest flow and rerun ...", file=sys.stderr, flush=True)
                flow = run_worker("bench.flow_cost", {**common, "mode": "flow", "home": str(home),
                                                      "server_pid": server.pid}, timeout=3600)  # fmt: skip
                print(f"[cost] {n:,} chunks: write_stream ...", file=sys.stderr, flush=True)
                bare = run_worker("bench.flow_cost", {**common, "mode": "bare", "codecs": flow["codecs"]}, timeout=3600)
                rows.append({"bare": bare, **flow})
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
            if a.pair_chunks:
                print(f"[cost] two runs at once, {a.pair_chunks:,} chunks each ...", file=sys.stderr, flush=True)
                pair = two_at_once(env, work, a.pair_chunks, batch_for(a.pair_chunks, a.batch))
    print(f"load after: {os.getloadavg()}")
    if a.json:
        Path(a.json).write_text(json.dumps({"rows": rows, "pair": pair}, indent=1))
    if rows:
        print(_table(rows))
    if pair:
        print(_pair_table(pair))
    return 0


def _table(rows: list[dict[str, Any]]) -> str:
    head = ["chunks", "batch", "write_stream s", "flow s", "flow/bare", "task runs", "API calls (HTTP + events)",
            "server CPU s", "DB growth", "flow peak RSS", "rerun s", "rerun/first", "rerun chunk writes"]  # fmt: skip
    body = []
    for r in rows:
        f, re_ = r["first"], r["rerun"]
        body.append([f"{r['nchunks']:,}", str(r["batch"]), f"{r['bare']['seconds']:.2f}", f"{f['seconds']:.2f}",
                     f"{f['seconds'] / r['bare']['seconds']:.2f}", str(f["task_runs"]),
                     f"{f['api']['http'] + f['api']['events']} ({f['api']['http']} + {f['api']['events']})",
                     f"{f['server_cpu']:.1f}", f"{f['db_growth'] / 2**20:.1f} MiB", f"{r['peak_rss_mib']:.0f} MiB",
                     f"{re_['seconds']:.2f}", f"{re_['seconds'] / f['seconds']:.1%}", str(re_["writes"])])  # fmt: skip
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(head)]
    lines = [f"ingest flow vs write_stream, {CHUNK[0]} x {CHUNK[1]} float32 chunks, zstd-1, local disk, "
             f"{WORKERS} batches x {CHUNK_CONCURRENCY} chunks in flight (stream: {WORKERS * CHUNK_CONCURRENCY}), "
             f"{cores()} cores",
             "| " + " | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)) + " |",
             "|" + "|".join("-" * (w + 2) for w in widths) + "|"]  # fmt: skip
    lines += ["| " + " | ".join(c.ljust(w) for c, w in zip(b, widths, strict=True)) + " |" for b in body]
    return "\n".join(lines)


def _pair_table(p: dict[str, Any]) -> str:
    """Processor sharing: a run alone keeps ``busy`` cores busy; with the other load seen, two runs at
    once can take ``explained`` times as long from the CPU they need alone."""
    alone, pair = p["alone"], p["pair"]
    one = alone["runs"][0]
    busy = alone["cpu"] / one["seconds"]

    def demand(runs: int, others: float) -> float:
        return max(1.0, (runs * busy + others) / cores())

    explained = demand(2, pair["others_cores"]) / demand(1, alone["others_cores"])
    each = " / ".join(f"{r['seconds']:.2f} ({r['running']:.2f})" for r in pair["runs"])
    slowest = max(r["seconds"] for r in pair["runs"])
    lines = [f"two runs at once: {p['nchunks']:,} chunks each, two process workers on one work pool; seconds from "
             f"submission to the end (in parentheses: in state Running), {cores()} cores",
             "| runs | seconds (Running) | CPU s per run | cores busy per run | other load, cores | slowdown | "
             "explained by CPU share |",
             "|---|---|---|---|---|---|---|",
             f"| one alone | {one['seconds']:.2f} ({one['running']:.2f}) | {alone['cpu']:.1f} | {busy:.2f} | "
             f"{alone['others_cores']:.2f} | 1.00 | 1.00 |",
             f"| two at once | {each} | {pair['cpu']:.1f} | {pair['cpu'] / slowest:.2f} | {pair['others_cores']:.2f} | "
             f"{slowest / one['seconds']:.2f} | {explained:.2f} |"]  # fmt: skip
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
