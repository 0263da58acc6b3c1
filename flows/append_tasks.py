"""The tasks of the ``append`` flow: plan a commit, write its units in batches, publish it.

``write_dataset_units`` writes a run of the commit's units (each one stored object, rebuilt from the
files and, for a partial chunk, the values already published). Its cache key is independent of the
flow run: the dataset's location and uid, the commit number and the units' tokens (which sources land
where). A retried or rerun flow run plans the same commit again (:meth:`Dataset.begin_append` resumes
an unpublished commit with the same plan), so every batch that finished is a cache hit.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE, CachePolicy
from prefect.context import TaskRunContext
from pydantic import BaseModel, ConfigDict

from flows.params import Execution
from flows.sources.pieces import writing_piece
from flows.stores import StoreRef
from flows.tasks import retry_policy
from zarrcore.datasets import Transaction, open_dataset

__all__ = ["UnitsJob", "UnitsCachePolicy", "write_dataset_units", "commit_dataset", "transaction_of", "CACHE_VERSION"]

#: Bumped when the meaning of a units result changes, so old ledger entries stop matching.
CACHE_VERSION = "zarrcore-units/1"


class UnitsJob(BaseModel):
    """One write task's input: units ``[start, stop)`` of commit ``commit`` of the dataset at ``path``."""

    model_config = ConfigDict(frozen=True)

    store: StoreRef
    path: str
    uid: str
    commit: int
    start: int
    stop: int
    #: SHA-256 of the units' tokens: what they write, independent of the run.
    digest: str
    #: Placement index -> URL of the files these units read.
    sources: dict[int, str]
    source_options: dict[str, Any]
    variables: tuple[str, ...]
    chunk_concurrency: int = 8

    def cache_key(self) -> str:
        doc = [CACHE_VERSION, self.store.url, self.path, self.uid, self.commit, self.start, self.stop, self.digest]
        return hashlib.sha256(json.dumps(doc).encode()).hexdigest()


@dataclass
class UnitsCachePolicy(CachePolicy):
    """Cache key of a :class:`UnitsJob` (the task's ``job`` argument); the same in every flow run."""

    def compute_key(
        self, task_ctx: TaskRunContext, inputs: dict[str, Any], flow_parameters: dict[str, Any], **kwargs: Any
    ) -> str | None:
        job = inputs.get("job")
        return job.cache_key() if isinstance(job, UnitsJob) else None


@functools.lru_cache(maxsize=8)
def _transaction(store: StoreRef, path: str, commit: int) -> Transaction:
    return open_dataset(store.open(), path).transaction(commit)


def transaction_of(store: StoreRef, path: str, commit: int) -> Transaction:
    """The transaction of commit ``commit``, rebuilt once per process."""
    return _transaction(store, path, commit)


_POLICY = retry_policy(Execution())


@task(
    name="write-dataset-units",
    task_run_name="write units {job.start}-{job.stop} of commit {job.commit}",
    **_POLICY,
    cache_policy=UnitsCachePolicy(),
    persist_result=True,
    result_serializer="json",
)
def write_dataset_units(job: UnitsJob) -> dict[str, Any]:
    """Write the job's units, at most ``job.chunk_concurrency`` at a time (on local disk at most one
    per core in the whole process, see :meth:`Transaction.write_all`); returns ``{"units": n, "stored": m}``
    (``m`` objects stored, the rest were all fill and not stored)."""
    txn = transaction_of(job.store, job.path, job.commit)
    units = txn.units[job.start : job.stop]
    pieces = {i: writing_piece(url, job.source_options, job.variables) for i, url in job.sources.items()}
    stored = txn.write_all(units, pieces, concurrency=job.chunk_concurrency)
    return {"units": len(units), "stored": stored}


@task(name="commit-dataset", task_run_name="publish commit {commit}", **_POLICY, cache_policy=NO_CACHE)
def commit_dataset(store: StoreRef, path: str, commit: int) -> dict[str, Any]:
    """Publish the commit (one PUT of the consolidated metadata); returns the dataset's new sizes."""
    ds = open_dataset(store.open(), path).transaction(commit).commit()
    return {"sizes": ds.sizes, "extent": ds.extent}
