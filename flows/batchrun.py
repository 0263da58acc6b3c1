"""Mapping a batch task over its jobs on a bounded task runner, with a live progress artifact."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import CancelledError
from dataclasses import dataclass
from typing import Any

from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.futures import PrefectFuture, as_completed
from prefect.tasks import Task

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
    """A progress artifact, updated at most once a second and at the end (each update is an API call
    made in the flow's thread while batches run)."""

    #: Seconds between two updates of the artifact.
    interval = 1.0

    def __init__(self, key: str, total: int, what: str) -> None:
        self.total = max(total, 1)
        self.done = 0
        self.what = what
        self._id = create_progress_artifact(0.0, key=key, description=f"{what}: 0 of {total} batches")
        self._next = time.monotonic() + self.interval
        self._tell()

    def _tell(self) -> None:
        for listener in list(listeners):
            listener(self.what, self.done, self.total)

    def advance(self) -> None:
        self.done += 1
        self._tell()
        now = time.monotonic()
        if self.done == self.total or now >= self._next:
            self._next = now + self.interval
            description = f"{self.what}: {self.done} of {self.total} batches"
            update_progress_artifact(self._id, 100.0 * self.done / self.total, description=description)


def _outcome(job: Any, future: PrefectFuture[Any]) -> BatchOutcome:
    future.wait()
    state = future.state
    if state.is_completed():
        return BatchOutcome(job, state.name or "Completed", result=future.result())
    error = future.result(raise_on_failure=False) if state.is_failed() or state.is_crashed() else None
    message = f"{type(error).__name__}: {error}" if isinstance(error, BaseException) else (state.message or state.name)
    return BatchOutcome(job, state.name or str(state.type), error=message)


def _recorded_done(future: PrefectFuture[Any]) -> bool:
    """Whether the API has the batch's task run as finished (its future itself may be lost)."""
    try:
        return future.state.is_completed()
    except Exception:  # the API is unreachable as well: count it as not finished
        return False


def run_batches(
    groups: Sequence[tuple[Task[..., Any], Sequence[Any]]], execution: Execution, *, key: str, what: str
) -> list[list[BatchOutcome]]:
    """Run each group's task over its jobs (one ``job`` argument each) on one bounded task runner.

    Never raises for a failed batch: every outcome is returned, in job order, once all have finished.
    """
    total = sum(len(jobs) for _, jobs in groups)
    with task_runner_for(execution) as runner:
        futures: list[list[PrefectFuture[Any]]] = [
            list(runner.map(task_, {"job": list(jobs)})) if jobs else [] for task_, jobs in groups
        ]
        progress = _Progress(key, total, what)  # made while the first batches already run
        try:
            for _ in as_completed([f for group in futures for f in group]):
                progress.advance()
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
    return outcomes
