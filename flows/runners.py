"""Task runners chosen by a run's parameters: a bounded thread pool, or Dask (prefect-dask)."""

from __future__ import annotations

from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from flows.params import Execution

__all__ = ["task_runner_for"]


def task_runner_for(execution: Execution) -> TaskRunner:
    """A fresh task runner for the batches: never an unbounded pool.

    ``threads`` runs ``max_workers`` batches at once in the flow's process. ``dask`` connects to
    ``dask_address``, or starts a local cluster of one worker process with ``max_workers`` threads.
    """
    if execution.task_runner == "threads":
        return ThreadPoolTaskRunner(max_workers=execution.max_workers)
    try:
        from prefect_dask import DaskTaskRunner
    except ImportError as exc:  # pragma: no cover - prefect-dask is an optional extra
        raise RuntimeError("task_runner='dask' needs prefect-dask: pip install 'zarrcore[dask]'") from exc
    if execution.dask_address:
        return DaskTaskRunner(address=execution.dask_address)
    return DaskTaskRunner(
        cluster_kwargs={
            "n_workers": 1,
            "threads_per_worker": execution.max_workers,
            "processes": True,
            "dashboard_address": None,
            "host": "127.0.0.1",
        }
    )
