"""Peak memory of streaming a large array: it should stay near ``concurrency x chunk size``.

    python -m bench.stream_memory                       # 2 GiB float32, 4 MiB chunks, concurrency 16
    python -m bench.stream_memory --size-gib 0.25       # a quick run

Writes a synthetic float32 array (each chunk computed from its index, so the source holds no memory)
with ``write_stream`` to a temporary folder on local disk, then reads it back with ``stream_chunks``
into a deliberately slow consumer. A thread samples the process RSS every few milliseconds; the table
shows the RSS before each phase, the peak during it, the difference, and ``concurrency x chunk size``.
It also shows the peak of memory allocated through Python and numpy (``tracemalloc``), which is what
the stream itself holds, whatever the C allocator keeps cached: glibc gives each worker thread an
arena that keeps freed chunk buffers, which ``MALLOC_ARENA_MAX=2`` limits.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psutil

import zarrcore
from zarrcore.storage import LocalStore

MiB = 1 << 20
CODECS = {
    "none": [{"name": "bytes", "configuration": {"endian": "little"}}],
    "lz4": [
        {"name": "bytes", "configuration": {"endian": "little"}},
        {
            "name": "blosc",
            "configuration": {"cname": "lz4", "clevel": 1, "shuffle": "shuffle", "typesize": 4, "blocksize": 0},
        },
    ],
}


class PeakRSS:
    """Samples this process's resident set size in a thread; ``peak`` is the highest seen."""

    def __init__(self, interval: float = 0.002) -> None:
        self.process = psutil.Process()
        self.interval = interval
        self.baseline = self.peak = self.process.memory_info().rss
        self.traced_peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakRSS:
        tracemalloc.start()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)
        self.traced_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()


def synthetic_chunk(arr: zarrcore.Array, index: tuple[int, ...]) -> np.ndarray:
    """A deterministic chunk computed from its index (compressible, but not constant)."""
    region = arr.chunk_region(index)
    rows = np.arange(region[0].start, region[0].stop, dtype="float32")[:, None]
    cols = np.arange(region[1].start, region[1].stop, dtype="float32")[None, :]
    return rows * 0.001 + cols


def write_phase(arr: zarrcore.Array, concurrency: int) -> PeakRSS:
    def source() -> Iterator[tuple[tuple[int, ...], np.ndarray]]:
        for index in arr.chunk_indices():
            yield index, synthetic_chunk(arr, index)

    with PeakRSS() as rss:
        summary = arr.write_stream(source(), concurrency=concurrency)
    assert summary.ok and summary.written == arr.nchunks, summary
    return rss


def read_phase(arr: zarrcore.Array, concurrency: int, consumer_delay: float) -> PeakRSS:
    checked = 0
    with PeakRSS() as rss:
        for index, chunk in arr.stream_chunks(concurrency=concurrency):
            if checked % 97 == 0:
                np.testing.assert_array_equal(chunk, synthetic_chunk(arr, index))
            checked += 1
            time.sleep(consumer_delay)  # a slow consumer: the stream must not read ahead
    assert checked == arr.nchunks
    return rss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-gib", type=float, default=2.0)
    parser.add_argument("--chunk-mib", type=int, default=4, choices=[1, 4, 16])
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--consumer-delay", type=float, default=0.005, help="seconds the consumer spends per chunk")
    parser.add_argument("--codec", choices=sorted(CODECS), default="lz4")
    parser.add_argument("--dir", type=Path, default=None, help="where to write (default: a temp folder)")
    parser.add_argument("--read-from", type=Path, help=argparse.SUPPRESS)  # the read phase, in a fresh process
    args = parser.parse_args()

    if args.read_from:
        rss = read_phase(zarrcore.open_array(LocalStore(args.read_from)), args.concurrency, args.consumer_delay)
        print(json.dumps({"baseline": rss.baseline, "peak": rss.peak, "traced_peak": rss.traced_peak}))
        return

    side = int(np.sqrt(args.chunk_mib * MiB / 4))
    cols = 8 * side
    rows = max(side, round(args.size_gib * 1024**3 / 4 / cols / side) * side)
    chunk_bytes = side * side * 4
    window = args.concurrency * chunk_bytes

    root = Path(tempfile.mkdtemp(prefix="zarrcore-stream-memory-", dir=args.dir))
    try:
        arr = zarrcore.create(LocalStore(root), shape=(rows, cols), chunks=(side, side), dtype="float32",
                              codecs=CODECS[args.codec])  # fmt: skip
        print(f"array {arr.shape} float32 = {arr.nbytes / 1024**3:.2f} GiB, {arr.nchunks} chunks of "
              f"{chunk_bytes / MiB:.0f} MiB, codec {args.codec}, concurrency {args.concurrency}, "
              f"consumer sleeps {args.consumer_delay * 1000:.0f} ms per chunk")  # fmt: skip
        t0 = time.perf_counter()
        write_rss = write_phase(arr, args.concurrency)
        write_s = time.perf_counter() - t0
        on_disk = sum(f.stat().st_size for f in root.rglob("*") if f.is_file())
        t0 = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-m", "bench.stream_memory", "--read-from", str(root), "--concurrency",
             str(args.concurrency), "--consumer-delay", str(args.consumer_delay)],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        read_s = time.perf_counter() - t0
        read_rss = json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(root, ignore_errors=True)

    print(f"on disk {on_disk / MiB:.0f} MiB; write {write_s:.1f} s; read {read_s:.1f} s (in a fresh process)")
    print(f"{'phase':<6} {'baseline RSS':>13} {'peak RSS':>10} {'peak - baseline':>16} {'peak traced':>12} "
          f"{'concurrency x chunk':>20}")  # fmt: skip
    rows_out = [("write", write_rss.baseline, write_rss.peak, write_rss.traced_peak),
                ("read", read_rss["baseline"], read_rss["peak"], read_rss["traced_peak"])]  # fmt: skip
    for name, baseline, peak, traced in rows_out:
        print(f"{name:<6} {baseline / MiB:>9.0f} MiB {peak / MiB:>6.0f} MiB {(peak - baseline) / MiB:>12.0f} MiB "
              f"{traced / MiB:>8.0f} MiB {window / MiB:>16.0f} MiB")  # fmt: skip


if __name__ == "__main__":
    main()
