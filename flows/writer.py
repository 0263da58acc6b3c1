"""One live writer per dataset or array: the flow run holds zarrcore's writer claim while it writes.

The owner is the flow run id, so a retry of the same run (from the UI or the CLI) is the same writer
and proceeds, while another live run into the same place fails fast naming the holder
(:class:`~zarrcore.errors.WriterBusy`), or waits for it when asked. A crashed run's claim expires after
``ttl`` seconds without its heartbeat and is taken over: 60 s, or ``ZARRFLOW_CLAIM_TTL_SECONDS`` from
the environment of the process running the flow. See docs/writers.md.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager

from prefect.runtime import flow_run

import zarrcore
from flows.stores import StoreRef

__all__ = ["hold_writer", "hold_writers", "claim_ttl", "CLAIM_TTL_SECONDS", "TTL_VARIABLE"]

#: Seconds a claim stays in force after its last renewal (the heartbeat renews it every ttl/3).
CLAIM_TTL_SECONDS = 60.0
#: The environment variable that changes it for the runs of one process.
TTL_VARIABLE = "ZARRFLOW_CLAIM_TTL_SECONDS"


def claim_ttl() -> float:
    """The claim ttl of this process: ``ZARRFLOW_CLAIM_TTL_SECONDS`` if set (at least 1 s), else 60 s."""
    raw = os.environ.get(TTL_VARIABLE)
    if not raw:
        return CLAIM_TTL_SECONDS
    try:
        ttl = float(raw)
    except ValueError:
        raise ValueError(f"{TTL_VARIABLE}={raw!r} is not a number of seconds") from None
    if not ttl >= 1.0:
        raise ValueError(f"{TTL_VARIABLE}={raw!r}: a claim ttl must be at least 1 second")
    return ttl


@contextmanager
def hold_writer(store: StoreRef, path: str, *, wait_seconds: float = 0.0,
                ttl: float | None = None) -> Iterator[zarrcore.Claim]:  # fmt: skip
    """Hold the writer claim on ``path`` in ``store`` for the block, owned by the current flow run
    (a process outside a flow run is its own writer), renewed by a heartbeat, released at the end."""
    ttl = claim_ttl() if ttl is None else ttl
    owner = str(flow_run.get_id() or f"process-{id(flow_run)}")
    name = flow_run.get_name() or ""
    with zarrcore.claim_writer(store.open(), path, owner=owner, ttl=ttl, wait=wait_seconds,
                               info={"flow_run": name}, heartbeat=True) as claim:  # fmt: skip
        yield claim


@contextmanager
def hold_writers(store: StoreRef, paths: Iterable[str], *, wait_seconds: float = 0.0,
                 ttl: float | None = None) -> Iterator[list[zarrcore.Claim]]:  # fmt: skip
    """:func:`hold_writer` on each of ``paths`` (taken in sorted order, so two runs never hold one
    path each while waiting for the other's), all released at the end."""
    with ExitStack() as stack:
        yield [stack.enter_context(hold_writer(store, p, wait_seconds=wait_seconds, ttl=ttl))
               for p in sorted({p.strip("/") for p in paths})]  # fmt: skip
