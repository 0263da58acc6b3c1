"""Byte ranges of one object read together: ranges close to each other share one request."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from zarrcore.pool import run_all
from zarrcore.storage.base import RangeRequest, Store

__all__ = ["COALESCE_GAP", "COALESCE_MAX", "Run", "coalesce", "read_ranges", "split_run"]

#: Ranges at most this many bytes apart are fetched with one request, unless the store says otherwise
#: (:attr:`~zarrcore.storage.base.Store.range_gap`; zarr-python's default too)...
COALESCE_GAP = Store.range_gap
#: ... as long as that request stays within this many bytes.
COALESCE_MAX = 16 << 20


@dataclass(frozen=True, slots=True)
class Run:
    """Bytes ``[start, stop)`` of an object, fetched with one request, and the positions (in the
    caller's list) of the ranges it holds."""

    start: int
    stop: int
    members: tuple[int, ...]


def coalesce(ranges: Sequence[RangeRequest], *, gap: int = COALESCE_GAP, max_size: int = COALESCE_MAX) -> list[Run]:
    """Group ``ranges`` (in offset order) into runs: ranges at most ``gap`` bytes apart share one,
    up to ``max_size`` bytes a run."""
    order = sorted(range(len(ranges)), key=lambda n: (ranges[n].start, ranges[n].end))
    runs: list[Run] = []
    group: list[int] = []
    start = stop = 0
    for n in order:
        r = ranges[n]
        if group and (r.start - stop > gap or r.end - start > max_size):
            runs.append(Run(start, stop, tuple(group)))
            group = []
        if not group:
            start = stop = r.start
        group.append(n)
        stop = max(stop, r.end)
    if group:
        runs.append(Run(start, stop, tuple(group)))
    return runs


def read_ranges(
    store: Store, key: str, ranges: Sequence[RangeRequest], *, version: str | None = None
) -> list[bytes | memoryview]:
    """The bytes of each of ``ranges`` of the object at ``key``, in the order asked: one request per
    :func:`coalesce` run, the runs in flight together, each read only from ``version`` when given.
    A range past the end of the object comes back short. Raises what ``store.get_versioned`` raises."""
    out: list[bytes | memoryview] = [b""] * len(ranges)

    def fetch(run: Run) -> None:
        data, _ = store.get_versioned(key, RangeRequest(run.start, run.stop), version=version)
        split_run(run, data, ranges, out)

    run_all(fetch, coalesce(ranges, gap=store.range_gap), store)
    return out


def split_run(
    run: Run, data: bytes | memoryview, ranges: Sequence[RangeRequest], out: list[bytes | memoryview]
) -> None:
    """Put each range of ``run`` in its place in ``out``, cut from ``data`` (the run's bytes, which may
    stop short at the object's end)."""
    if len(run.members) == 1 and ranges[run.members[0]] == RangeRequest(run.start, run.stop):
        out[run.members[0]] = data
        return
    view = memoryview(data).cast("B")
    for n in run.members:
        out[n] = view[ranges[n].start - run.start : ranges[n].end - run.start]
