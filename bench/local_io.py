"""Cases 1 and 2: write and read a whole float32 array on local disk, Zarr v3, per codec.

    python -m bench.local_io --chunk-kib 4096            # case 1: 4 MiB chunks
    python -m bench.local_io --chunk-kib 64              # case 2: 64 KiB chunks
    python -m bench.local_io --chunk-kib 4096 --cold     # case 1, cold rounds beside the warm ones
    python -m bench.local_io --chunk-kib 4096 --rows     # case 1 with chunks of whole rows
    python -m bench.local_io --quick                     # a small smoke run

Rounds (``--repeat``) go over every codec and contender in turn, so a burst of load from elsewhere
on the machine hits one round of everyone rather than all rounds of one contender. Each (round,
codec, contender) is a fresh process that loads the same source array, writes it into a fresh folder
and reads it back; the table shows the best time over the rounds and the highest RSS seen (``+RSS``
is above the RSS after loading the source array; a read's result array counts).

Warm rounds warm up on a small array and touch fresh memory before each timed operation; with
``--cold`` the same rounds run again cold, neither done, as in a user's script, and a second table
shows best and median times of both side by side.
"""

from __future__ import annotations

import argparse
import gc
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np

from bench._coldwarm import format_cold_warm
from bench._common import (
    CODECS,
    MiB,
    Row,
    Timing,
    chunk_shape,
    dir_bytes,
    format_table,
    row_chunk_shape,
    rss_bytes,
    run_rounds,
    save_rows,
    source_file,
    square_shape,
    timed,
    warm_memory,
    workdir,
)

REFS = ["limit", "tensorstore", "zarr-python+zarrs", "zarr-python"]
ORDER = ["limit", "zarrcore", "tensorstore", "zarr-python+zarrs", "zarr-python"]
MODES = ("warm", "cold")


def worker(args: dict[str, Any]) -> dict[str, Any]:
    """One write then one read by one contender, in this fresh process.

    ``warm``: a warm-up on a small array first and fresh memory touched before each timed operation
    (throughput, with neither start-up nor this VM's first-touch page cost); ``cold``: neither, as in
    a user's script (the library is imported and the array created or opened untimed, as in warm)."""
    from bench.local_contenders import CONTENDERS

    cold = args.get("mode") == "cold"
    data = np.load(args["source"])
    shape, chunks = tuple(args["shape"]), tuple(args["chunks"])
    contender = CONTENDERS[args["contender"]](shape, chunks, args["codec"])
    if not cold:
        # Warm up on a 2x2-chunk array first (thread pools, codec contexts, lazy imports): the timed
        # run measures throughput, not start-up.
        small = tuple(min(2 * c, n) for c, n in zip(chunks, shape, strict=True))
        warm = CONTENDERS[args["contender"]](small, chunks, args["codec"])
        warm_path = Path(args["workdir"]) / f"warm-{args['contender']}-{args['codec']}.zarr"
        warm.prepare(warm_path)
        warm.write(np.ascontiguousarray(data[tuple(slice(0, n) for n in small)]))
        warm.open(warm_path)
        warm.read()
        shutil.rmtree(warm_path)
        gc.collect()
    base = rss_bytes()
    write, read = Timing(), Timing()
    path = Path(args["workdir"]) / f"{args['contender']}-{args['codec']}.zarr"
    contender.prepare(path)
    if not cold:
        warm_memory(2 * data.nbytes)
    timed(lambda: contender.write(data), write)
    contender.open(path)
    if not cold:
        warm_memory(2 * data.nbytes)
    out = timed(contender.read, read)
    if args["verify"] and not np.array_equal(out, data):
        raise AssertionError(f"{args['contender']} read back different data")
    del out
    stored = dir_bytes(path)
    shutil.rmtree(path)
    return {"write": write.__dict__, "read": read.__dict__, "base_rss": base, "stored": stored,
            "nbytes": int(data.nbytes)}  # fmt: skip


def run(
    *,
    chunk_kib: int,
    size_mib: float,
    codecs: list[str],
    contenders: list[str],
    repeat: int,
    case: str,
    quiet_wait: float = 0.0,
    mode: str = "warm",
    rows: bool = False,
) -> list[Row]:
    shape, chunks = shapes(chunk_kib, size_mib, rows)
    nchunks = (shape[0] // chunks[0]) * (shape[1] // chunks[1])
    print(
        f"[{case}] float32 {shape} = {shape[0] * shape[1] * 4 / MiB:.0f} MiB, chunks {chunks} "
        f"= {chunk_kib} KiB, {nchunks} chunks; {mode}, {repeat} rounds",
        file=sys.stderr,
        flush=True,
    )
    with workdir() as tmp:
        source = source_file(tmp, shape)

        def args(codec: str, name: str, rnd: int) -> dict[str, Any]:
            return {"contender": name, "codec": codec, "shape": shape, "chunks": chunks,
                    "source": str(source), "workdir": str(tmp), "verify": rnd == 0, "mode": mode}  # fmt: skip

        rows = run_rounds("bench.local_io", case, codecs, contenders, repeat, args, quiet_wait=quiet_wait)
    for r in rows:
        r.extra["mode"] = mode
    rank = {n: i for i, n in enumerate(ORDER)}
    rows.sort(key=lambda r: (codecs.index(r.group), r.op != "write", rank.get(r.contender, 99)))
    return rows


def shapes(chunk_kib: int, size_mib: float, rows: bool) -> tuple[tuple[int, int], tuple[int, int]]:
    """The array's shape and its chunks: squares, or with ``rows`` whole rows."""
    shape = square_shape(size_mib)
    return shape, row_chunk_shape(chunk_kib, shape[1]) if rows else chunk_shape(chunk_kib)


def title(case: str, chunk_kib: int, size_mib: float, repeat: int, what: str = "warm, best of",
          rows: bool = False) -> str:  # fmt: skip
    shape, chunks = shapes(chunk_kib, size_mib, rows)
    n = (shape[0] // chunks[0]) * (shape[1] // chunks[1])
    return (
        f"{case}: local disk, float32 {shape[0]}x{shape[1]} ({shape[0] * shape[1] * 4 / MiB:.0f} MiB), "
        f"chunks {chunks[0]}x{chunks[1]} ({chunk_kib} KiB, {n} chunks), {what} {repeat}"
    )


def run_and_print(*, chunk_kib: int, size_mib: float, codecs: list[str], contenders: list[str], repeat: int,
                  case: str, quiet_wait: float, cold: bool, rows: bool = False) -> dict[str, list[Row]]:  # fmt: skip
    """The warm rounds (and, with ``cold``, the cold rounds after them), each table printed; the rows
    by mode."""
    out: dict[str, list[Row]] = {}
    for mode in MODES if cold else MODES[:1]:
        out[mode] = run(chunk_kib=chunk_kib, size_mib=size_mib, codecs=codecs, contenders=contenders,
                        repeat=repeat, case=case, quiet_wait=quiet_wait, mode=mode, rows=rows)  # fmt: skip
    print(format_table(out["warm"], REFS, title=title(case, chunk_kib, size_mib, repeat, rows=rows)) + "\n",
          flush=True)  # fmt: skip
    if cold:
        both = title(case, chunk_kib, size_mib, repeat, "cold beside warm, rounds:", rows=rows)
        print(format_cold_warm(out["warm"], out["cold"], REFS, title=both) + "\n", flush=True)
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--chunk-kib", type=int, default=4096, help="chunk size in KiB (a square of float32)")
    p.add_argument("--size-mib", type=float, default=256, help="array size in MiB (default 256)")
    p.add_argument("--codecs", default=",".join(CODECS), help="comma-separated, from: " + ", ".join(CODECS))
    p.add_argument("--contenders", default=",".join(ORDER))
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--quiet-wait", type=float, default=15.0,
                   help="seconds to wait, before each run, for other processes to go quiet (default 15)")  # fmt: skip
    p.add_argument("--cold", action="store_true",
                   help="also run every round cold (no warm-up, no memory touched first) and print both")  # fmt: skip
    p.add_argument("--rows", action="store_true",
                   help="chunks of whole rows, not squares: a chunk's place in a read is contiguous")  # fmt: skip
    p.add_argument("--quick", action="store_true", help="smoke run: 32 MiB, one repeat")
    p.add_argument("--json", help="also save the rows as JSON here")
    a = p.parse_args(argv)
    if a.worker:
        print(json.dumps(worker(json.loads(a.worker))))
        return
    if a.quick:
        a.size_mib, a.repeat, a.quiet_wait = 32, 1, 0
    case = f"local {a.chunk_kib} KiB {'row ' if a.rows else ''}chunks"
    rows = run_and_print(chunk_kib=a.chunk_kib, size_mib=a.size_mib, codecs=a.codecs.split(","),
                         contenders=a.contenders.split(","), repeat=a.repeat, case=case, quiet_wait=a.quiet_wait,
                         cold=a.cold, rows=a.rows)  # fmt: skip
    if a.json:
        save_rows([r for mode_rows in rows.values() for r in mode_rows], a.json)


if __name__ == "__main__":
    main()
