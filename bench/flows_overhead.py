"""Cases 4-6: what the Prefect ``ingest`` flow costs on top of zarrcore, what a rerun costs, and the
memory a large ingest holds.

    python -m bench.flows_overhead                 # all three cases
    python -m bench.flows_overhead --cases 4,5     # skip the 8 GiB ingest
    python -m bench.flows_overhead --quick

4. ``ingest`` (synthetic source -> local disk) against bare ``Array.write_stream`` of the same chunks
   (same array, codec and concurrency; the stream's chunks are computed in its writer threads, as
   the flow's are in its task threads), at 256 chunks of 4 MiB and 10,000 chunks of 64 KiB.
5. A rerun of the completed 10,000-chunk ingest: chunk writes issued (telemetry) and wall time
   against the first run.
6. Peak RSS of an 8 GiB synthetic ingest, 4 MiB chunks, 16 batches in flight.

A Prefect server (``prefect_test_harness``: a real server on a temporary SQLite database) is started
once, before any timing; every measurement runs in a fresh worker process that talks to it.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from bench._common import MiB, RssSampler, rss_bytes, run_worker, wait_quiet, workdir

#: zstd level 1, as in the other cases: the cheaper the codec, the more any overhead shows.
LAYOUT = {"compression": "zstd", "compression_level": 1, "fill_value": 0}


def _source(shape: tuple[int, ...]) -> dict[str, Any]:
    return {"kind": "synthetic", "shape": list(shape), "dtype": "float32", "seed": 1, "pattern": "smooth"}


def _grid_shape(nchunks: int) -> tuple[int, int]:
    """A near-square 2-D grid of exactly ``nchunks`` chunks."""
    rows = int(nchunks**0.5)
    while nchunks % rows:
        rows -= 1
    return rows, nchunks // rows


class _Lazy:
    """A chunk whose data is computed when the writer thread converts it (``np.asarray``)."""

    def __init__(self, reader: Any, region: tuple[slice, ...]) -> None:
        self.reader, self.region = reader, region

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        data = self.reader.read(self.region)
        return data if dtype is None else data.astype(dtype)


def _count_writes() -> tuple[dict[str, int], int]:
    from zarrcore import telemetry

    counts = {"stored": 0, "deleted": 0}

    def on_write(event: Any, measurements: dict[str, Any], metadata: dict[str, Any]) -> None:
        counts["stored" if metadata.get("stored") else "deleted"] += 1

    return counts, telemetry.attach(("zarrcore", "chunk", "write", "stop"), on_write)


_last_run: list[Any] = []  # the id of the flow run this worker ran last
_retries: list[int] = []  # client retries during each timed flow run, in order


def _settle_api(settle_seconds: float = 30.0) -> None:
    """Wait until the API has recorded every task run of the previous flow run (not timed).

    Task-run states reach the server as events, recorded in batches after the flow call returns. On
    the server's SQLite database, a flow run created while such a batch is being written can meet a
    locked database, and the client then retries after 1-2 s: a cost of the previous run, not of the
    one being timed.
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.events.worker import EventsWorker

    if not _last_run:
        return
    EventsWorker.drain_all()
    deadline = time.monotonic() + settle_seconds
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[_last_run[-1]])))
            if runs and all(r.state is not None and r.state.is_final() for r in runs):
                break
            time.sleep(0.2)
    time.sleep(0.5)


class _ClientRetries(logging.Handler):
    """Counts the Prefect client's retried requests (a 503 from a locked SQLite database, say), which it
    logs at DEBUG; passes WARNING and above on to stderr as before."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "retryable" in record.getMessage():
            self.count += 1
        elif record.levelno >= logging.WARNING:
            print(self.format(record), file=sys.stderr)

    @contextlib.contextmanager
    def attached(self) -> Iterator[_ClientRetries]:
        logger = logging.getLogger("prefect.client")
        level, propagate = logger.level, logger.propagate
        logger.addHandler(self)
        logger.setLevel(logging.DEBUG)
        logger.propagate = False
        try:
            yield self
        finally:
            logger.removeHandler(self)
            logger.setLevel(level)
            logger.propagate = propagate


def _run_ingest(dest: str, shape: tuple[int, ...], chunks: tuple[int, ...], workers: int) -> tuple[float, dict]:
    from flows.ingest import ingest

    _settle_api()
    with _ClientRetries().attached() as retries:
        t0 = time.perf_counter()
        state = _ingest_state(ingest, dest, shape, chunks, workers)
        seconds = time.perf_counter() - t0
    _retries.append(retries.count)
    _last_run.append(state.state_details.flow_run_id)
    if not state.is_completed():
        raise RuntimeError(f"ingest into {dest} ended {state.type}: {state.message}")
    return seconds, state.result()["targets"][0]


def _ingest_state(ingest: Any, dest: str, shape: tuple[int, ...], chunks: tuple[int, ...], workers: int) -> Any:
    return ingest(source=_source(shape), destination=dest, array="data", layout={**LAYOUT, "chunks": list(chunks)},
                  execution={"max_workers": workers}, return_state=True)  # fmt: skip


def _run_bare(dest: str, shape: tuple[int, ...], chunks: tuple[int, ...], workers: int, codecs: Any) -> float:
    import zarrcore
    from flows.sources import SyntheticSource

    reader = SyntheticSource(**_source(shape)).open()
    _settle_api()  # the server records the previous flow run now, not while this one is timed
    t0 = time.perf_counter()
    array = zarrcore.create(dest, path="data", shape=shape, chunks=chunks, dtype="float32", codecs=codecs,
                            fill_value=0)  # fmt: skip
    summary = array.write_stream(((i, _Lazy(reader, array.chunk_region(i))) for i in array.chunk_indices()),
                                 concurrency=workers)  # fmt: skip
    seconds = time.perf_counter() - t0
    if not summary.ok:
        raise RuntimeError(f"write_stream failed: {summary.failed[:3]}")
    return seconds


def overhead_worker(a: dict[str, Any]) -> dict[str, Any]:
    """Case 4 (and 5 with ``rerun``): flow and bare stream, alternating which goes first per round."""
    import zarrcore

    chunks = tuple(a["chunks"])
    grid = _grid_shape(a["nchunks"])
    shape = (grid[0] * chunks[0], grid[1] * chunks[1])
    root = Path(a["workdir"])
    flow_s: list[float] = []
    flow_retries: list[int] = []
    bare_s: list[float] = []
    out: dict[str, Any] = {"shape": shape, "nbytes": int(np.prod(shape)) * 4}
    # Warm-up, not timed, as in cases 1-3: the first flow run in a process imports Prefect's engine and
    # registers the flow and the ledger's block type; the first write_stream loads the codecs.
    warm = (str(root / "warm-flow.zarr"), str(root / "warm-bare.zarr"))
    warm_shape = (2 * chunks[0], 2 * chunks[1])
    _run_ingest(warm[0], warm_shape, chunks, a["workers"])
    codecs = zarrcore.open_array(warm[0], path="data").metadata.codecs
    _run_bare(warm[1], warm_shape, chunks, a["workers"], codecs)
    _retries.clear()
    for path in warm:
        shutil.rmtree(path)
    for rnd in range(a["repeat"]):
        flow_dest, bare_dest = str(root / f"flow-{rnd}.zarr"), str(root / f"bare-{rnd}.zarr")
        order = ["flow", "bare"] if rnd % 2 == 0 else ["bare", "flow"]
        for which in order:
            gc.collect()
            if which == "flow":
                seconds, summary = _run_ingest(flow_dest, shape, chunks, a["workers"])
                flow_s.append(seconds)
                flow_retries.append(_retries[-1])
                out["flow_summary"] = summary
            else:
                bare_s.append(_run_bare(bare_dest, shape, chunks, a["workers"], codecs))
                shutil.rmtree(bare_dest)
        if a.get("rerun") and rnd == 0:
            counts, handler = _count_writes()
            from zarrcore import telemetry

            try:
                seconds, summary = _run_ingest(flow_dest, shape, chunks, a["workers"])
            finally:
                telemetry.detach(handler)
            out["rerun"] = {"first": flow_s[0], "seconds": seconds, "writes": counts,
                            "chunks_written": summary["chunks_written"],
                            "chunks_skipped": summary["chunks_skipped"], "retries": _retries[-1]}  # fmt: skip
        shutil.rmtree(flow_dest)
    out.update(flow=flow_s, bare=bare_s, flow_retries=flow_retries)
    return out


def rss_worker(a: dict[str, Any]) -> dict[str, Any]:
    """Case 6: one large ingest, RSS sampled throughout."""
    chunks = tuple(a["chunks"])
    nchunks = max(1, round(a["gib"] * 1024 * MiB / (chunks[0] * chunks[1] * 4)))
    grid = _grid_shape(nchunks)
    shape = (grid[0] * chunks[0], grid[1] * chunks[1])
    import flows.ingest  # noqa: F401 - imported before the baseline is taken

    gc.collect()
    base = rss_bytes()
    dest = str(Path(a["workdir"]) / "large.zarr")
    with RssSampler(0.02) as rss:
        seconds, summary = _run_ingest(dest, shape, chunks, a["workers"])
    stored = summary["bytes_written"]
    shutil.rmtree(dest)
    return {"shape": shape, "nbytes": int(np.prod(shape)) * 4, "seconds": seconds, "peak_rss": rss.peak,
            "base_rss": base, "stored": stored, "chunks": summary["chunks_written"]}  # fmt: skip


@contextlib.contextmanager
def prefect_server() -> Iterator[dict[str, str]]:
    """A real Prefect server on a temporary database for the workers; yields their environment."""
    home = tempfile.mkdtemp(prefix="zarrcore-bench-prefect-")
    os.environ.update(PREFECT_HOME=home, PREFECT_SERVER_ANALYTICS_ENABLED="false")
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    try:
        with prefect_test_harness(server_startup_timeout=120):
            yield {"PREFECT_API_URL": str(PREFECT_API_URL.value()), "PREFECT_HOME": home,
                   "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_LOGGING_LEVEL": "WARNING"}  # fmt: skip
    finally:
        shutil.rmtree(home, ignore_errors=True)


def run(*, cases: list[int], repeat: int, workers: int, small: tuple[int, int], large: tuple[int, int],
        ingest_gib: float, rss_workers: int, quiet_wait: float = 0.0) -> tuple[str, dict[str, Any]]:  # fmt: skip
    """Run the chosen cases; return their tables as text, and the figures."""
    out: list[str] = []
    figures: dict[str, Any] = {}
    print("[flows] starting a Prefect server ...", file=sys.stderr, flush=True)
    with prefect_server() as env, workdir() as tmp:
        os.environ.update(env)
        if 4 in cases or 5 in cases:
            rows = []
            rerun = None
            for nchunks, chunk_kib in (small, large):
                side = int((chunk_kib * 1024 // 4) ** 0.5)
                wait_quiet(quiet_wait)
                print(f"[flows] ingest vs write_stream, {nchunks} chunks of {chunk_kib} KiB ...", file=sys.stderr,
                      flush=True)  # fmt: skip
                args = {"mode": "overhead", "nchunks": nchunks, "chunks": [side, side], "workers": workers,
                        "repeat": repeat if 4 in cases else 1, "workdir": str(tmp),
                        "rerun": 5 in cases and nchunks == large[0]}  # fmt: skip
                res = run_worker("bench.flows_overhead", args)
                rows.append((nchunks, chunk_kib, res))
                rerun = res.get("rerun") or rerun
            if 4 in cases:
                out.append(_overhead_table(rows, workers, repeat))
                figures["overhead"] = [{"nchunks": n, "chunk_kib": k, "bare": min(r["bare"]), "flow": min(r["flow"])}
                                       for n, k, r in rows]  # fmt: skip
            if rerun is not None:
                out.append(_rerun_table(rerun, large))
                figures["rerun"] = rerun
        if 6 in cases:
            wait_quiet(quiet_wait)
            print(f"[flows] {ingest_gib:g} GiB ingest, 4 MiB chunks, {rss_workers} in flight ...", file=sys.stderr,
                  flush=True)  # fmt: skip
            res = run_worker("bench.flows_overhead", {"mode": "rss", "gib": ingest_gib, "chunks": [1024, 1024],
                             "workers": rss_workers, "workdir": str(tmp)})  # fmt: skip
            out.append(_rss_table(res, ingest_gib, rss_workers))
            figures["rss"] = res
    return "\n\n".join(out), figures


def _table(title: str, header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    lines = [title, "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)),
             "  ".join("-" * w for w in widths)]  # fmt: skip
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)


def _overhead_table(rows: list[tuple[int, int, dict[str, Any]]], workers: int, repeat: int) -> str:
    body = []
    for nchunks, chunk_kib, res in rows:
        mib = res["nbytes"] / MiB
        bare, flow = min(res["bare"]), min(res["flow"])
        target = 1.10 if nchunks <= 256 else 1.25
        rounds = " ".join(f"{t:.2f}" for t in res["flow"])
        retries = " ".join(str(n) for n in res.get("flow_retries", []))
        for name, s in (("write_stream", bare), ("ingest flow", flow)):
            flow_row = name == "ingest flow"
            body.append([f"{nchunks:,} x {chunk_kib} KiB", name, f"{s:.2f}", f"{mib / s:,.0f}",
                         f"{flow / bare:.2f}" if flow_row else "", f"<= {target:.2f}" if flow_row else "",
                         rounds if flow_row else " ".join(f"{t:.2f}" for t in res["bare"]),
                         retries if flow_row else ""])  # fmt: skip
    return _table(f"case 4: ingest flow vs bare write_stream, local disk, zstd-1, {workers} chunks/batches in flight, "
                  f"best of {repeat}", ["chunks", "how", "seconds", "MiB/s", "flow/bare", "target", "every round s",
                                        "API client retries per round"], body)  # fmt: skip


def _rerun_table(r: dict[str, Any], large: tuple[int, int]) -> str:
    writes = r["writes"]["stored"] + r["writes"]["deleted"]
    body = [[f"{large[0]:,} x {large[1]} KiB", f"{r['first']:.2f}", f"{r['seconds']:.2f}",
             f"{r['seconds'] / r['first']:.1%}", str(writes), f"{r['chunks_skipped']:,}"]]  # fmt: skip
    header = ["chunks", "first run s", "rerun s", "rerun/first", "chunk writes", "chunks skipped"]
    return _table("case 5: rerun of a completed ingest (target: 0 chunk writes, <= 10% of the first run)", header, body)


def _rss_table(r: dict[str, Any], gib: float, workers: int) -> str:
    body = [[f"{r['nbytes'] / (1 << 30):.1f} GiB", f"{r['chunks']:,} x 4 MiB", str(workers), f"{r['seconds']:.1f}",
             f"{r['nbytes'] / MiB / r['seconds']:,.0f}", f"{r['stored'] / (1 << 30):.2f} GiB",
             f"{r['base_rss'] / MiB:,.0f} MiB", f"{r['peak_rss'] / MiB:,.0f} MiB"]]  # fmt: skip
    header = ["size", "chunks", "in flight", "seconds", "MiB/s", "stored", "RSS before", "peak RSS"]
    return _table(
        "case 6: peak RSS of a large synthetic ingest to local disk, zstd-1 (target: peak <= 512 MiB)", header, body
    )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--cases", default="4,5,6")
    p.add_argument("--repeat", type=int, default=5, help="rounds of case 4 (best taken)")
    p.add_argument("--workers", type=int, default=4, help="batches in flight (flow) = chunks in flight (stream)")
    p.add_argument("--small", default="256x4096", help="NCHUNKSxCHUNK_KIB of the small ingest (default 256x4096)")
    p.add_argument("--large", default="10000x64", help="NCHUNKSxCHUNK_KIB of the large ingest (default 10000x64)")
    p.add_argument("--ingest-gib", type=float, default=8.0, help="size of the case-6 ingest (default 8)")
    p.add_argument("--rss-workers", type=int, default=16)
    p.add_argument("--quiet-wait", type=float, default=15.0)
    p.add_argument("--quick", action="store_true", help="smoke run: 16 and 400 chunks, 0.25 GiB")
    a = p.parse_args(argv)
    if a.worker:
        args = json.loads(a.worker)
        print(json.dumps(overhead_worker(args) if args["mode"] == "overhead" else rss_worker(args)))
        return
    if a.quick:
        a.small, a.large, a.ingest_gib, a.repeat, a.quiet_wait = "16x1024", "400x64", 0.25, 1, 0

    def pair(text: str) -> tuple[int, int]:
        n, kib = text.lower().split("x")
        return int(n), int(kib)

    cases = [int(c) for c in a.cases.split(",")]
    text, _ = run(cases=cases, repeat=a.repeat, workers=a.workers, small=pair(a.small), large=pair(a.large),
                  ingest_gib=a.ingest_gib, rss_workers=a.rss_workers, quiet_wait=a.quiet_wait)  # fmt: skip
    print(text)


if __name__ == "__main__":
    main()
