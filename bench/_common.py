"""What every benchmark shares: the source data, the codecs, timing, RSS sampling, workers and tables."""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

MiB = 1 << 20
REPO = Path(__file__).resolve().parents[1]

#: The v3 codec chains every contender uses, by the name the tables print.
CODECS: dict[str, list[dict[str, Any]]] = {
    "none": [{"name": "bytes", "configuration": {"endian": "little"}}],
    "blosc-lz4": [
        {"name": "bytes", "configuration": {"endian": "little"}},
        {
            "name": "blosc",
            "configuration": {"cname": "lz4", "clevel": 5, "shuffle": "shuffle", "typesize": 4, "blocksize": 0},
        },
    ],
    "zstd": [
        {"name": "bytes", "configuration": {"endian": "little"}},
        {"name": "zstd", "configuration": {"level": 1, "checksum": False}},
    ],
}


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def square_shape(size_mib: float, itemsize: int = 4) -> tuple[int, int]:
    """A square 2-D shape of about ``size_mib`` MiB, a multiple of 1024 on each side."""
    side = max(1024, round(math.sqrt(size_mib * MiB / itemsize) / 1024) * 1024)
    return side, side


def chunk_shape(chunk_kib: int, itemsize: int = 4) -> tuple[int, int]:
    """A square 2-D chunk of ``chunk_kib`` KiB (must be a power of 4 times the item size)."""
    side = math.isqrt(chunk_kib * 1024 // itemsize)
    if side * side * itemsize != chunk_kib * 1024:
        raise ValueError(f"{chunk_kib} KiB is not a square chunk of {itemsize}-byte items")
    return side, side


def row_chunk_shape(chunk_kib: int, width: int, itemsize: int = 4) -> tuple[int, int]:
    """A 2-D chunk of ``chunk_kib`` KiB spanning whole rows of ``width`` items: a chunk's place in a
    C-order result is then one contiguous block."""
    rows, rest = divmod(chunk_kib * 1024 // itemsize, width)
    if rows < 1 or rest:
        raise ValueError(f"{chunk_kib} KiB is not a whole number of rows of {width} {itemsize}-byte items")
    return rows, width


def make_source(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """Deterministic float32 data that compresses like a measured field: smooth signal plus noise,
    quantized to 0.01 (zstd-1 stores it in about 60-70% of its size)."""
    rng = np.random.default_rng(seed)
    out = np.empty(shape, dtype=np.float32)
    x = np.linspace(0, 40 * np.pi, shape[-1], dtype=np.float32)
    step = max(1, (64 * MiB) // (shape[-1] * 4))
    for r0 in range(0, shape[0], step):
        r1 = min(shape[0], r0 + step)
        y = np.arange(r0, r1, dtype=np.float32)[:, None] / 97.0
        block = 100.0 * np.sin(x[None, :] + y) * np.cos(y / 3.0)
        block += rng.standard_normal(block.shape, dtype=np.float32)
        out[r0:r1] = np.round(block, 2)
    return out


def source_file(workdir: Path, shape: tuple[int, ...]) -> Path:
    """The source array saved once as .npy under ``workdir`` (workers load it instead of regenerating)."""
    path = workdir / f"source-{'x'.join(map(str, shape))}.npy"
    if not path.exists():
        np.save(path, make_source(shape))
    return path


@contextlib.contextmanager
def workdir(prefix: str = "zarrcore-bench-") -> Iterator[Path]:
    """A temporary folder on local disk under /tmp, removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=os.environ.get("ZARRCORE_BENCH_TMP", "/tmp")))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


# -- measuring -------------------------------------------------------------------------------------
def rss_bytes() -> int:
    import psutil

    return psutil.Process().memory_info().rss


class RssSampler:
    """Samples this process's RSS every ``interval`` seconds in a thread; ``peak`` is the highest seen."""

    def __init__(self, interval: float = 0.005) -> None:
        import psutil

        self._proc = psutil.Process()
        self._interval = interval
        self._stop = threading.Event()
        self.peak = self._proc.memory_info().rss
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.peak = max(self.peak, self._proc.memory_info().rss)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)


def warm_memory(nbytes: int) -> None:
    """Touch ``nbytes`` of fresh memory and free it, right before a timed operation.

    On a VM whose host takes back free guest memory (free page reporting), the first touch of a
    page that was free for a second or more costs a host fault: about 0.6 s per 256 MiB here, more
    than a whole read. Pages touched and freed just before are handed out again fast, so every
    contender gets warm pages for its output array and the page cache alike.
    """
    buf = np.ones(max(1, nbytes // 8), dtype=np.float64)
    del buf


@dataclass
class Timing:
    """Best-of-N wall time of one operation and the peak RSS seen during any of the N runs; per run,
    the CPU seconds (user + system) of this process and, when a server process was given, of it."""

    seconds: list[float] = field(default_factory=list)
    peak_rss: int = 0
    cpu: list[float] = field(default_factory=list)
    server_cpu: list[float] = field(default_factory=list)

    @property
    def best(self) -> float:
        return min(self.seconds)


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far, its threads included."""
    import psutil

    t = psutil.Process(pid).cpu_times()
    return t.user + t.system


def timed(fn: Callable[[], Any], timing: Timing, *, server_pid: int | None = None) -> Any:
    with RssSampler() as rss:
        s0 = process_cpu(server_pid) if server_pid else 0.0
        c0, t0 = time.process_time(), time.perf_counter()
        out = fn()
        timing.seconds.append(time.perf_counter() - t0)
        timing.cpu.append(time.process_time() - c0)
        if server_pid:
            timing.server_cpu.append(process_cpu(server_pid) - s0)
    timing.peak_rss = max(timing.peak_rss, rss.peak)
    return out


def busy_cores(window: float = 0.5) -> float:
    """How many cores the whole machine kept busy over ``window`` seconds (from /proc/stat); 0 where
    that is not available. The benchmark driver sleeps meanwhile, so this is everyone else's load."""

    def sample() -> tuple[int, int]:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
        return sum(fields[:8]), idle

    try:
        t0, i0 = sample()
        time.sleep(window)
        t1, i1 = sample()
    except OSError:
        return 0.0
    return cores() * (1 - (i1 - i0) / max(1, t1 - t0))


def wait_quiet(max_wait: float = 0.0, threshold: float = 0.25) -> float:
    """Wait (at most ``max_wait`` seconds) until other processes keep fewer than ``threshold`` cores
    busy; returns the load last seen. Timings taken on a shared machine are only comparable when
    taken in quiet moments."""
    global _quiet_budget
    start = time.monotonic()
    deadline = start + min(max_wait, _quiet_budget)
    load = busy_cores()
    while load > threshold and time.monotonic() < deadline:
        time.sleep(1.0)
        load = busy_cores()
    _quiet_budget = max(0.0, _quiet_budget - (time.monotonic() - start))
    return load


#: Seconds that all ``wait_quiet`` calls of one process may spend waiting, together (bounds a run).
_quiet_budget = float(os.environ.get("ZARRCORE_BENCH_QUIET_BUDGET", "180"))


# -- results and tables ----------------------------------------------------------------------------
@dataclass
class Row:
    """One measured operation of one contender."""

    case: str
    group: str  # e.g. the codec: rows of one group are compared with each other
    contender: str
    op: str
    seconds: float
    nbytes: int  # logical (uncompressed) bytes moved
    peak_rss: int = 0
    base_rss: int = 0
    stored: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def mib_s(self) -> float:
        return self.nbytes / MiB / self.seconds if self.seconds > 0 else float("inf")


def keep_best(best: dict[tuple[str, ...], Row], row: Row) -> None:
    """Fold one round's row into ``best``: the shortest time, the largest RSS rise, every time kept."""
    key = (row.group, row.contender, row.op)
    prev = best.get(key)
    row.extra.setdefault("all_seconds", [row.seconds])
    if prev is not None:
        row.extra["all_seconds"] = prev.extra["all_seconds"] + row.extra["all_seconds"]
        if prev.seconds < row.seconds:  # the CPU figures shown are those of the best round
            for k in ("cpu", "server_cpu"):
                if k in prev.extra:
                    row.extra[k] = prev.extra[k]
        row.seconds = min(row.seconds, prev.seconds)
        row.stored = row.stored or prev.stored
        row.extra["load"] = prev.extra.get("load", []) + row.extra.get("load", [])
        if prev.peak_rss - prev.base_rss > row.peak_rss - row.base_rss:
            row.peak_rss, row.base_rss = prev.peak_rss, prev.base_rss
    best[key] = row


def format_table(rows: Sequence[Row], refs: Sequence[str], *, title: str = "") -> str:
    """Rows grouped by (group, op), with each row's throughput as a ratio of each reference contender's."""
    header = ["codec", "op", "contender", "seconds", "MiB/s", "peak RSS", "+RSS", "stored"]
    header += [f"x {r}" for r in refs]
    servers = any("server_cpu" in r.extra for r in rows)
    if servers:  # where a server shares the machine: who used how much CPU, and what that allows
        header += ["client CPU s", "server CPU s", f"CPU / {cores()} cores s"]
    lines: list[list[str]] = []
    for row in rows:
        peers = {r.contender: r for r in rows if r.group == row.group and r.op == row.op}
        cells = [
            row.group,
            row.op,
            row.contender,
            f"{row.seconds:.3f}",
            f"{row.mib_s:,.0f}",
            f"{row.peak_rss / MiB:,.0f} MiB" if row.peak_rss else "-",
            f"{(row.peak_rss - row.base_rss) / MiB:,.0f} MiB" if row.peak_rss else "-",
            f"{row.stored / MiB:,.0f} MiB" if row.stored else "-",
        ]
        for ref in refs:
            peer = peers.get(ref)
            cells.append(f"{row.mib_s / peer.mib_s:.2f}" if peer and peer is not row else "")
        if servers:
            cpu, server = row.extra.get("cpu"), row.extra.get("server_cpu")
            cells += [f"{cpu:.2f}" if cpu is not None else "-", f"{server:.2f}" if server is not None else "-",
                      f"{(cpu + server) / cores():.3f}" if cpu is not None and server is not None else "-"]
        lines.append(cells)
    widths = [max(len(h), *(len(c[i]) for c in lines)) if lines else len(h) for i, h in enumerate(header)]
    right = {3, 4, 5, 6, 7, *range(8, len(header))}

    def fmt(cells: list[str]) -> str:
        pairs = enumerate(zip(cells, widths, strict=True))
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in pairs)

    out = [title] if title else []
    out += [fmt(header), fmt(["-" * w for w in widths])]
    prev = None
    for cells in lines:
        if prev is not None and cells[0] != prev:
            out.append("")
        prev = cells[0]
        out.append(fmt(cells))
    return "\n".join(out)


def save_rows(rows: Sequence[Row], path: str | os.PathLike[str]) -> None:
    Path(path).write_text(json.dumps([asdict(r) for r in rows], indent=1))


# -- workers ---------------------------------------------------------------------------------------
def run_worker(module: str, args: dict[str, Any], *, timeout: float = 1800) -> Any:
    """Run ``python -m module --worker JSON`` and return the JSON it prints last (a fresh process per
    contender keeps RSS figures and thread pools apart)."""
    proc = subprocess.run(
        [sys.executable, "-m", module, "--worker", json.dumps(args)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"worker {module} {args} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_rounds(
    module: str,
    case: str,
    groups: Sequence[str],
    contenders: Sequence[str],
    repeat: int,
    make_args: Callable[[str, str, int], dict[str, Any]],
    *,
    quiet_wait: float = 0.0,
) -> list[Row]:
    """``repeat`` rounds over every group (codec) and contender, each a fresh worker process that
    reports ``{"write": Timing, "read": Timing, "base_rss", "stored", "nbytes"}``; the best of the
    rounds per (group, contender, op). Rounds rather than back-to-back repeats, so that a burst of
    load from elsewhere hits one round of everyone instead of every round of one contender."""
    best: dict[tuple[str, ...], Row] = {}
    for rnd in range(repeat):
        for group in groups:
            for name in contenders:
                load = wait_quiet(quiet_wait)
                res = run_worker(module, make_args(group, name, rnd))
                for op in ("write", "read"):
                    t = res[op]
                    stored = res.get("stored", 0) if op == "write" else 0
                    extra: dict[str, Any] = {"load": [round(load, 2)]}
                    extra.update({k: t[k][0] for k in ("cpu", "server_cpu") if t.get(k)})
                    row = Row(case, group, name, op, t["seconds"][0], res["nbytes"], t["peak_rss"],
                              res["base_rss"], stored, extra)  # fmt: skip
                    keep_best(best, row)
                w, r = best[(group, name, "write")], best[(group, name, "read")]
                print(f"  round {rnd + 1}: {group:<10} {name:<17} write {w.mib_s:8.0f} MiB/s  read {r.mib_s:8.0f} "
                      f"MiB/s (best so far; others' load {load:.2f} cores)", file=sys.stderr, flush=True)  # fmt: skip
    return list(best.values())


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": sys.version.split()[0]}
    pkgs = ("zarrcore", "numpy", "numcodecs", "zarr", "zarrs", "tensorstore", "obstore", "boto3", "moto", "prefect")
    for pkg in pkgs:
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "-"
    if out["zarrcore"] == "-":  # run from the source tree, not installed
        import zarrcore

        out["zarrcore"] = zarrcore.__version__
    return out


def machine() -> str:
    import platform

    import psutil

    mem = psutil.virtual_memory().total / (1 << 30)
    return f"{cores()} cores, {mem:.0f} GiB, {platform.system()} {platform.machine()}"
