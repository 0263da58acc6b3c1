"""One live writer per dataset or array: the flow run holds zarrcore's writer claim while it writes.

The owner is the flow run id, so a retry of the same run (from the UI or the CLI) is the same writer
and proceeds, while another live run into the same place fails fast naming the holder
(:class:`~zarrcore.errors.WriterBusy`), or waits for it when asked. A crashed run's claim expires after
``ttl`` seconds without its heartbeat and is taken over. See docs/writers.md.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from prefect.runtime import flow_run

import zarrcore
from flows.stores import StoreRef

__all__ = ["hold_writer", "CLAIM_TTL_SECONDS"]

#: Seconds a claim stays in force after its last renewal (the heartbeat renews it every ttl/3).
CLAIM_TTL_SECONDS = 60.0


@contextmanager
def hold_writer(store: StoreRef, path: str, *, wait_seconds: float = 0.0,
                ttl: float = CLAIM_TTL_SECONDS) -> Iterator[zarrcore.Claim]:  # fmt: skip
    """Hold the writer claim on ``path`` in ``store`` for the block, owned by the current flow run
    (a process outside a flow run is its own writer), renewed by a heartbeat, released at the end."""
    owner = str(flow_run.get_id() or f"process-{id(flow_run)}")
    name = flow_run.get_name() or ""
    with zarrcore.claim_writer(store.open(), path, owner=owner, ttl=ttl, wait=wait_seconds,
                               info={"flow_run": name}, heartbeat=True) as claim:  # fmt: skip
        yield claim
