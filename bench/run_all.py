"""``make bench``: every case in one run on this machine, then each target against its measurement.

    python -m bench.run_all                 # the full run (about 10-15 minutes on 2 cores)
    python -m bench.run_all --quick         # a smoke run of every case (about 2 minutes)
    python -m bench.run_all --cold          # cases 1, 2 and 7 also cold, beside warm
    python -m bench.run_all --skip s3,flows --json results.json

Cases: 1. local disk, 4 MiB chunks; 2. local disk, 64 KiB chunks; 3. S3 (moto); 4-6. the ingest
flow; 7. a sharded array on local disk and on S3: whole writes and reads, small reads and updates
(reported, no target).
A case whose module is missing (the S3 store, flows/) is reported as skipped.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from dataclasses import asdict
from typing import Any

from bench import flows_overhead, local_io, s3_io, sharded_io
from bench._coldwarm import median_ratio
from bench._common import Row, format_table, machine, versions


def _ratio(rows: list[Row], group: str, op: str, who: str, ref: str) -> float | None:
    by = {r.contender: r for r in rows if r.group == group and r.op == op}
    if who not in by or ref not in by:
        return None
    return by[who].mib_s / by[ref].mib_s


def _checks(rows: list[Row], refs: dict[str, float], label: str) -> list[tuple[str, float | None, float]]:
    out = []
    for group in dict.fromkeys(r.group for r in rows):
        for op in ("write", "read"):
            for ref, goal in refs.items():
                out.append((f"{label} {group} {op}: zarrcore / {ref}", _ratio(rows, group, op, "zarrcore", ref), goal))
    return out


def _median_checks(rows: list[Row], refs: dict[str, float], label: str) -> list[tuple[str, float | None, float]]:
    out = []
    for group in dict.fromkeys(r.group for r in rows):
        for op in ("write", "read"):
            for ref, goal in refs.items():
                ratio = median_ratio(rows, group, op, "zarrcore", ref)
                out.append((f"{label} {group} {op}: zarrcore / {ref}", ratio, goal))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small sizes, one round: a smoke run")
    p.add_argument("--skip", default="", help="comma-separated: local4m, local64k, s3, flows, sharded")
    p.add_argument("--repeat", type=int, default=3,
                   help="rounds per case (best taken); the short cases (4 MiB, S3, flows) run at least 5")  # fmt: skip
    p.add_argument("--quiet-wait", type=float, default=15.0, help="max seconds to wait for a quiet machine per run")
    p.add_argument("--cold", action="store_true",
                   help="cases 1, 2 and 7 also cold (a fresh process per round, no warm-up), side by side")  # fmt: skip
    p.add_argument("--json", help="save every row and figure here")
    a = p.parse_args(argv)
    skip = set(filter(None, a.skip.split(",")))
    repeat, quiet = (1, 0.0) if a.quick else (a.repeat, a.quiet_wait)
    size = 32 if a.quick else 256
    t0 = time.monotonic()
    print(f"machine: {machine()}")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in versions().items()))
    print(f"rounds per case: {repeat}, 4 MiB / S3 / flows: {max(repeat, 5) if repeat > 1 else 1} (best taken)"
          f"{'; --quick smoke run' if a.quick else ''}\n", flush=True)
    checks: list[tuple[str, float | None, float]] = []
    saved: dict[str, Any] = {}

    # Operations of 0.05-0.9 s (4 MiB chunks, S3) vary by 10-30% from round to round on this shared
    # 2-core machine: they get more rounds; 64 KiB operations take 0.1-2.5 s and get ``repeat``.
    short = max(repeat, 5) if repeat > 1 else 1
    zarrs = "zarr-python+zarrs"
    for key, chunk_kib, goals in (("local4m", 4096, {"limit": 0.95, "tensorstore": 1.0, zarrs: 1.0}),
                                  ("local64k", 64, {"tensorstore": 1.0, zarrs: 1.0})):  # fmt: skip
        if key in skip:
            continue
        case = f"local {chunk_kib} KiB chunks"
        rounds = short if chunk_kib >= 1024 else repeat
        by_mode = local_io.run_and_print(chunk_kib=chunk_kib, size_mib=size, codecs=list(local_io.CODECS),
                                         contenders=local_io.ORDER, repeat=rounds, case=case, quiet_wait=quiet,
                                         cold=a.cold)  # fmt: skip
        checks += _checks(by_mode["warm"], goals, case)
        saved[key] = [asdict(r) for r in by_mode["warm"]]
        if "cold" in by_mode:
            checks += _median_checks(by_mode["cold"], goals, f"{case} cold (medians)")
            saved[f"{key}-cold"] = [asdict(r) for r in by_mode["cold"]]

    if "s3" not in skip:
        if importlib.util.find_spec("zarrcore.storage.cloud.s3") is None:
            print("case 3 (S3) skipped: zarrcore.storage.cloud.s3 is not there yet\n")
        else:
            rows, title = s3_io.run(chunk_kib=4096, size_mib=size, codecs=["zstd"], contenders=s3_io.ORDER,
                                    repeat=short, concurrency=16, quiet_wait=quiet)  # fmt: skip
            print(format_table(rows, s3_io.REFS, title=title) + "\n", flush=True)
            checks += _checks(rows, {"zarr-python": 1.0, "boto3": 0.9}, "s3 4096 KiB chunks")
            saved["s3"] = [asdict(r) for r in rows]

    if "flows" not in skip:
        if importlib.util.find_spec("flows.ingest") is None:
            print("cases 4-6 (flows) skipped: flows.ingest is not there yet\n")
        else:
            small, large, gib = ((16, 1024), (400, 64), 0.25) if a.quick else ((256, 4096), (10_000, 64), 8.0)
            text, figures = flows_overhead.run(cases=[4, 5, 6], repeat=short, workers=4, small=small,
                                               large=large, ingest_gib=gib, rss_workers=16,
                                               quiet_wait=quiet)  # fmt: skip
            print(text + "\n", flush=True)
            saved["flows"] = figures
            for o in figures.get("overhead", []):
                goal = 1.10 if o["nchunks"] <= 256 else 1.25
                checks.append((f"ingest flow / write_stream at {o['nchunks']:,} chunks", o["flow"] / o["bare"], -goal))
            if "rerun" in figures:
                r = figures["rerun"]
                writes = r["writes"]["stored"] + r["writes"]["deleted"]
                checks.append(("rerun: chunk writes issued", float(writes), -0.0))
                checks.append(("rerun: wall time / first run", r["seconds"] / r["first"], -0.10))
            if "rss" in figures:
                peak = figures["rss"]["peak_rss"] / (1 << 30)
                checks.append((f"peak RSS of the {gib:g} GiB ingest (GiB)", peak, -0.5))

    for where in ("local", "s3"):
        if "sharded" in skip:
            break
        rows, title, cold = sharded_io.run(size_mib=16 if a.quick else 64, shard_kib=4096, chunk_kib=64,
                                           reads=20 if a.quick else 100, repeat=repeat, concurrency=16,
                                           contenders=sharded_io.CONTENDERS, store=where, cold=a.cold)  # fmt: skip
        print(format_table(rows, sharded_io.REFS, title=title) + "\n", flush=True)
        saved[f"sharded-{where}"] = [asdict(r) for r in rows]
        if cold:
            print(sharded_io.cold_table(rows, cold, title, repeat) + "\n", flush=True)
            saved[f"sharded-{where}-cold"] = [asdict(r) for r in cold]

    if checks:
        print("targets (a negative goal is an upper bound):")
        width = max(len(c[0]) for c in checks)
        for name, value, goal in checks:
            if value is None:
                verdict, shown = "not measured", "-"
            else:
                ok = value >= goal if goal > 0 else value <= -goal
                verdict, shown = ("met" if ok else "MISSED"), f"{value:.2f}"
            bound = f">= {goal:.2f}" if goal > 0 else f"<= {-goal:.2f}"
            print(f"  {name:<{width}}  {shown:>7}  {bound:<8}  {verdict}")
    print(f"\ntotal time: {time.monotonic() - t0:.0f} s")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"machine": machine(), "versions": versions(), "cases": saved,
                       "checks": [{"name": n, "value": v, "goal": g} for n, v, g in checks]}, f, indent=1)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
