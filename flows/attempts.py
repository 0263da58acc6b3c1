"""A flow run's earlier attempts, seen from a retry of it: what a dead process left behind in the API.

When the process running an attempt dies (SIGKILL, OOM, a lost machine), its task runs in flight can
never report their end and would stay ``Running`` beside the retry's own, even once the retry has
completed. :func:`close_dead_attempts` marks them ``Crashed``: every unfinished task run of this flow
run that an earlier attempt started (its ``flow_run_run_count`` is lower than this attempt's). It runs
before and after the batches (:func:`flows.batchrun.run_batches`): the second pass also finds the task
runs whose last events the server recorded late. Finished work is not affected: it is in the ledger.
"""

from __future__ import annotations

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterId,
    TaskRunFilter,
    TaskRunFilterState,
    TaskRunFilterStateType,
)
from prefect.client.schemas.objects import StateType
from prefect.context import FlowRunContext
from prefect.states import Crashed

__all__ = ["close_dead_attempts"]

#: States a task run of an ended attempt cannot be left in.
UNFINISHED = [StateType.RUNNING, StateType.PENDING, StateType.SCHEDULED]


def close_dead_attempts() -> int:
    """Mark ``Crashed`` every unfinished task run that an earlier attempt of this flow run started (its
    process died); returns how many. Outside a flow run, or on a first attempt, there are none."""
    context = FlowRunContext.get()
    if context is None or context.flow_run is None or context.flow_run.run_count <= 1:
        return 0
    attempt = context.flow_run.run_count
    with get_client(sync_client=True) as client:
        unfinished = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[context.flow_run.id])),
            task_run_filter=TaskRunFilter(state=TaskRunFilterState(type=TaskRunFilterStateType(any_=UNFINISHED))),
        )
        stale = [run for run in unfinished if run.flow_run_run_count < attempt]
        for run in stale:
            state = Crashed(message="the process running an earlier attempt of this flow run died; the retry "
                            "redid this work")  # fmt: skip
            client.set_task_run_state(run.id, state, force=True)
    return len(stale)
