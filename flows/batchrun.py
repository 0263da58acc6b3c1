"""Mapping a batch task over its jobs on a bounded task runner, with a live progress artifact."""

from __future__ import annotations

import contextvars
import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import CancelledError
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.context import FlowRunContext
from prefect.futures import PrefectFuture, as_completed
from prefect.tasks import Task

from flows.attempts import close_dead_attempts
from flows.params import Execution
from flows.runners import task_runner_for

__all__ = ["BatchOutcome", "SchedulerLost", "run_batches", "listeners"]

#: Called in the flow's process as ``listener(what, done, total)`` when batches finish (the CLI's progress bar).
listeners: list[Callable[[str, int, int], None]] = []


class SchedulerLost(RuntimeError):
    """The Dask cluster's scheduler went away mid-run: the batches still in flight are lost with it."""


@dataclass
class BatchOutcome:
    """How one batch task run ended."""

    job: Any
    state: str  # the final state's name: Completed, Cached, Failed, Crashed, ...
    result: dict[str, Any] | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.result is not None

    @property
    def cached(self) -> bool:
        return self.state == "Cached"


class _Progress:
    """The run's progress artifact: one per flow run, updated in place (a retry of the run takes over the
    artifact of its earlier attempt), from a thread that sends the count at most once a second while it
    changes and once at the end. So the artifact says what has finished within a second, even when the
    process is killed later (the first finished batch is sent at once), and no API call is made in the
    flow's thread for each batch."""

    #: Seconds between two updates of the artifact.
    interval = 1.0

    def __init__(self, key: str, total: int, what: str) -> None:
        self.total = max(total, 1)
        self.done = 0
        self.what = what
        earlier = _artifact_of_this_run(key)
        self._id = earlier or create_progress_artifact(0.0, key=key, description=self._text(0))
        self._sent = -1 if earlier else 0
        self._send()  # an earlier attempt's artifact starts again from 0 (finished batches come back cached)
        self._stop, self._changed = threading.Event(), threading.Event()
        context = contextvars.copy_context()  # the flow's Prefect settings and client, in the thread too
        self._thread = threading.Thread(target=context.run, args=(self._send_while_running,), daemon=True,
                                        name="progress-artifact")  # fmt: skip
        self._thread.start()
        self._tell()

    def _text(self, done: int) -> str:
        return f"{self.what}: {done} of {self.total} batches"

    def _tell(self) -> None:
        for listener in list(listeners):
            listener(self.what, self.done, self.total)

    def _send(self) -> None:
        done = self.done
        if done != self._sent:
            update_progress_artifact(self._id, 100.0 * done / self.total, description=self._text(done))
            self._sent = done

    def _send_while_running(self) -> None:
        while not self._stop.is_set():
            self._changed.wait()  # a batch has finished (or the run is over)
            self._changed.clear()
            try:
                self._send()
            except Exception as exc:  # the API unreachable for a moment: the next update, or the last, says it
                logging.getLogger(__name__).warning("progress artifact not updated: %s", exc)
            self._stop.wait(self.interval)

    def advance(self) -> None:
        self.done += 1
        self._changed.set()
        self._tell()

    def close(self) -> None:
        """Stop the thread and send the final count."""
        self._stop.set()
        self._changed.set()
        self._thread.join()
        self._send()


def _artifact_of_this_run(key: str) -> UUID | None:
    """The id of the artifact ``key`` an earlier attempt of this flow run made, if any."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return None
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key]),
                                           flow_run_id=ArtifactFilterFlowRunId(any_=[context.flow_run.id])),
            limit=1,
        )  # fmt: skip
    return found[0].id if found else None


def _outcome(job: Any, future: PrefectFuture[Any]) -> BatchOutcome:
    future.wait()
    state = future.state
    if state.is_completed():
        return BatchOutcome(job, state.name or "Completed", result=future.result())
    error = future.result(raise_on_failure=False) if state.is_failed() or state.is_crashed() else None
    message = f"{type(error).__name__}: {error}" if isinstance(error, BaseException) else (state.message or state.name)
    return BatchOutcome(job, state.name or str(state.type), error=message)


def _recorded_done(future: PrefectFuture[Any]) -> bool:
    """Whether the batch's task run finished and its result record is stored: what a rerun finds as a
    cache hit (its future itself may be lost). Prefect sets a task run Completed before it writes the
    record, so a worker lost between the two leaves a Completed run that a rerun writes again."""
    try:
        state = future.state
        if not state.is_completed():
            return False
        state.result(retry_result_failure=False)  # reads the stored record: raises when it was never written
        return True
    except Exception:  # no record, or the API or the result storage unreachable: not counted as finished
        return False


def run_batches(
    groups: Sequence[tuple[Task[..., Any], Sequence[Any]]], execution: Execution, *, key: str, what: str
) -> list[list[BatchOutcome]]:
    """Run each group's task over its jobs (one ``job`` argument each) on one bounded task runner.

    Never raises for a failed batch: every outcome is returned, in job order, once all have finished.
    """
    total = sum(len(jobs) for _, jobs in groups)
    close_dead_attempts()  # a retry after a crash: the dead attempt's task runs are no longer Running
    with task_runner_for(execution) as runner:
        futures: list[list[PrefectFuture[Any]]] = [
            list(runner.map(task_, {"job": list(jobs)})) if jobs else [] for task_, jobs in groups
        ]
        progress = _Progress(key, total, what)  # made while the first batches already run
        try:
            for _ in as_completed([f for group in futures for f in group]):
                progress.advance()
            close_dead_attempts()  # again: the server may have recorded some of their last events late
            outcomes = [
                [_outcome(job, future) for job, future in zip(jobs, group, strict=True)]
                for (_, jobs), group in zip(groups, futures, strict=True)
            ]
        except CancelledError as exc:
            if getattr(exc, "reason", None) != "scheduler-connection-lost":
                raise
            where = execution.dask_address or "of the run's local cluster"
            done = sum(_recorded_done(f) for group in futures for f in group)
            raise SchedulerLost(
                f"lost the connection to the Dask scheduler {where} ({exc.reason}) with {done} of {total} batches "
                "finished; finished batches are recorded: retry the flow run, or run it again with the same "
                "parameters, on a reachable cluster to write only the others"
            ) from exc
        finally:
            progress.close()
    return outcomes
