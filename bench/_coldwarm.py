"""Cold and warm figures of one case side by side: bests and medians over the rounds."""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from bench._common import MiB, Row

#: Short names for the ratio columns, which would make the table too wide otherwise.
SHORT = {"zarr-python+zarrs": "zarrs", "zarr-python": "zarr-py", "tensorstore": "ts"}


def median_seconds(row: Row) -> float:
    """The median wall time over every round folded into ``row`` (its ``seconds`` is the best)."""
    return statistics.median(row.extra.get("all_seconds", [row.seconds]))


def median_mib_s(row: Row) -> float:
    seconds = median_seconds(row)
    return row.nbytes / MiB / seconds if seconds > 0 else float("inf")


def median_ratio(rows: Sequence[Row], group: str, op: str, who: str, ref: str) -> float | None:
    """``who``'s median throughput over ``ref``'s for one (group, op); None where either is missing."""
    by = {r.contender: r for r in rows if r.group == group and r.op == op}
    if who not in by or ref not in by:
        return None
    return median_mib_s(by[who]) / median_mib_s(by[ref])


def format_cold_warm(warm: Sequence[Row], cold: Sequence[Row], refs: Sequence[str], *, title: str = "") -> str:
    """One line per (group, op, contender): best and median seconds warm and cold, the median
    throughputs, and the median throughput as a ratio of each reference contender's, warm and cold
    (``x zarrs`` is zarr-python + zarrs, ``x zarr-py`` zarr-python, ``x ts`` tensorstore)."""
    header = ["codec", "op", "contender", "warm best s", "warm med s", "cold best s", "cold med s",
              "warm med MiB/s", "cold med MiB/s"]  # fmt: skip
    header += [f"warm x {SHORT.get(r, r)}" for r in refs] + [f"cold x {SHORT.get(r, r)}" for r in refs]
    cold_by = {(r.group, r.op, r.contender): r for r in cold}
    lines: list[list[str]] = []
    for w in warm:
        c = cold_by.get((w.group, w.op, w.contender))
        cells = [w.group, w.op, w.contender, f"{w.seconds:.3f}", f"{median_seconds(w):.3f}",
                 f"{c.seconds:.3f}" if c else "-", f"{median_seconds(c):.3f}" if c else "-",
                 f"{median_mib_s(w):,.0f}", f"{median_mib_s(c):,.0f}" if c else "-"]  # fmt: skip
        for rows in (warm, cold):
            for ref in refs:
                ratio = None if ref == w.contender else median_ratio(rows, w.group, w.op, w.contender, ref)
                cells.append(f"{ratio:.2f}" if ratio is not None else "")
        lines.append(cells)
    widths = [max(len(h), *(len(c[i]) for c in lines)) if lines else len(h) for i, h in enumerate(header)]

    def fmt(cells: list[str]) -> str:
        pairs = enumerate(zip(cells, widths, strict=True))
        return "  ".join(c.rjust(w) if i >= 3 else c.ljust(w) for i, (c, w) in pairs)

    out = [title] if title else []
    out += [fmt(header), fmt(["-" * w for w in widths])]
    prev = None
    for cells in lines:
        if prev is not None and cells[0] != prev:
            out.append("")
        prev = cells[0]
        out.append(fmt(cells))
    return "\n".join(out)
