"""The batch tasks and their policy: retries for transient errors only, caching as idempotency.

``write_chunk_batch`` writes a run of consecutive chunks and returns a tiny result (per chunk: key,
stored bytes, CRC-32C of the encoded bytes). Its cache key is independent of the flow run: the array's
identity and incarnation, its metadata fingerprint, the batch's chunk range and a fingerprint of the
source data for those chunks. With results persisted to the ledger (:mod:`flows.ledger`), a rerun
finds every finished batch there and Prefect marks it ``Cached`` without running it; a batch whose
source data changed gets a new key and is rewritten.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import numpy as np
from prefect import task
from prefect.cache_policies import NO_CACHE, CachePolicy
from prefect.client.schemas.objects import TaskRun
from prefect.context import TaskRunContext
from prefect.states import State
from prefect.tasks import Task, exponential_backoff
from pydantic import BaseModel, ConfigDict

import zarrcore
from flows.ledger import content_hash, content_hash_like, write_manifest
from flows.params import Execution
from flows.sources import SourceSpec
from flows.stores import StoreRef
from flows.targets import ChunkBatch, TargetRef, create_target
from zarrcore.errors import ChunkError
from zarrcore.metadata import ArrayMetadata
from zarrcore.retry import is_retryable

__all__ = [
    "BatchJob",
    "VerifyJob",
    "BatchCachePolicy",
    "retry_if_transient",
    "retry_policy",
    "write_chunk_batch",
    "verify_chunk_batch",
    "configure",
    "create_array",
    "record_completion",
    "consolidate",
    "CACHE_VERSION",
]

#: Bumped when the meaning of a batch result changes, so old ledger entries stop matching.
CACHE_VERSION = "zarrcore-batch/1"


class BatchJob(BaseModel):
    """One write task's input: where to write, what to read, which chunks."""

    model_config = ConfigDict(frozen=True)

    target: TargetRef
    source: SourceSpec
    batch: ChunkBatch
    #: Chunks in flight inside the batch (``Execution.chunk_concurrency``; on memory and local disk at
    #: most the batch's share of the cores, see :func:`zarrcore.streams.concurrency_for`) and batches
    #: run at once (``Execution.max_workers``); neither is part of the cache key.
    chunk_concurrency: int = 8
    batches_at_once: int = 1
    #: Time limit of one chunk's encode and PUT (``Execution.chunk_timeout_seconds``).
    chunk_timeout_seconds: float | None = None

    def cache_key(self) -> str:
        """Array identity + incarnation + metadata fingerprint + chunk range + source fingerprint."""
        reader = self.source.open()
        reader.forget()  # what this thread kept for a batch that was never read (a cache hit)
        t = self.target
        h = hashlib.sha256(
            json.dumps([CACHE_VERSION, t.identity, t.incarnation, t.fingerprint, self.batch.start, self.batch.stop])
            .encode()
        )  # fmt: skip
        array = t.open()
        for index in self.batch.indices(array.grid_shape):
            h.update(reader.fingerprint(array.chunk_region(index)).encode())
        return h.hexdigest()


@dataclass
class BatchCachePolicy(CachePolicy):
    """Cache key of a :class:`BatchJob` (the task's ``job`` argument); the same in every flow run."""

    def compute_key(
        self, task_ctx: TaskRunContext, inputs: dict[str, Any], flow_parameters: dict[str, Any], **kwargs: Any
    ) -> str | None:
        job = inputs.get("job")
        return job.cache_key() if isinstance(job, BatchJob) else None


def _exception(state: State[Any]) -> BaseException | None:
    data = state.data
    if isinstance(data, BaseException):
        return data
    try:
        value = state.result(raise_on_failure=False)
    except BaseException as exc:  # reading the result may itself raise the error
        return exc
    return value if isinstance(value, BaseException) else None


def retry_if_transient(task: Task[..., Any], task_run: TaskRun, state: State[Any]) -> bool:
    """Retry only what may pass on its own: throttling, 5xx, resets and timeouts (never AccessDenied)."""
    exc = _exception(state)
    if exc is None:
        return False
    if isinstance(exc, ChunkError):
        exc = exc.cause
    return is_retryable(exc) or isinstance(exc, TimeoutError)


def retry_policy(execution: Execution) -> dict[str, Any]:
    """The retry options of every task under ``execution``: transient errors only, an exponential
    backoff from ``retry_delay_seconds`` with jitter, at most ``retries`` times."""
    return dict(
        retries=execution.retries,
        retry_delay_seconds=exponential_backoff(backoff_factor=execution.retry_delay_seconds),
        retry_jitter_factor=0.5,
        retry_condition_fn=retry_if_transient,
    )


#: The policy of a task called without :func:`configure`: that of the default ``Execution``.
_DEFAULT_POLICY = retry_policy(Execution())


@task(
    name="write-chunk-batch",
    task_run_name="write chunks {job.batch.start}-{job.batch.stop}",
    **_DEFAULT_POLICY,
    cache_policy=BatchCachePolicy(),
    persist_result=True,
    result_serializer="json",
)
def write_chunk_batch(job: BatchJob) -> dict[str, Any]:
    """Write the batch's chunks through :func:`zarrcore.write_stream` (each one atomic PUT, at most
    ``job.chunk_concurrency`` in flight, on local disk at most the batch's share of the cores, each
    bounded by ``job.chunk_timeout_seconds``); return ``{"chunks": [[key, bytes, hash]], "raw": n}`` in
    the batch's chunk order."""
    array = job.target.open()
    reader = job.source.open()
    indices = list(job.batch.indices(array.grid_shape))
    records: dict[tuple[int, ...], list[Any]] = {}
    failures: dict[tuple[int, ...], ChunkError] = {}
    raw = 0

    def chunks() -> Any:
        nonlocal raw
        for index in indices:
            if failures:  # a chunk failed: start no more, let those in flight finish
                return
            try:
                data = reader.read(array.chunk_region(index))
            except Exception as exc:
                failures[index] = ChunkError(index, exc, key=array.chunk_key(index))
                return
            raw += data.nbytes
            yield index, data if data.dtype == array.dtype else data.astype(array.dtype)

    def written(index: tuple[int, ...], encoded: bytes | memoryview | None) -> None:
        key = array.metadata.encode_chunk_key(index)
        records[index] = [key, 0, None] if encoded is None else [key, memoryview(encoded).nbytes, content_hash(encoded)]

    concurrency = zarrcore.streams.concurrency_for(array.store, job.chunk_concurrency, streams=job.batches_at_once)
    zarrcore.streams.write_stream(array, chunks(), concurrency=concurrency,
                                  timeout=job.chunk_timeout_seconds, on_written=written,
                                  on_error=lambda index, error: failures.setdefault(index, error))  # fmt: skip
    if failures:  # the first failed chunk in the batch's order, whichever finished first
        raise failures[min(failures, key=indices.index)]
    return {"chunks": [records[index] for index in indices], "raw": raw}


class VerifyJob(BaseModel):
    """One verify task's input: the chunks to check and their recorded hashes."""

    model_config = ConfigDict(frozen=True)

    target: TargetRef
    batch: ChunkBatch
    expected: dict[str, tuple[int, str] | None]
    source: SourceSpec | None = None


@task(
    name="verify-chunk-batch",
    task_run_name="verify chunks {job.batch.start}-{job.batch.stop}",
    **_DEFAULT_POLICY,
    cache_policy=NO_CACHE,
)
def verify_chunk_batch(job: VerifyJob) -> dict[str, Any]:
    """Read the batch's chunks back and compare them with the manifest (and the source, if given).

    Returns ``{"checked": n, "bytes": b, "mismatches": [[key, problem], ...]}``.
    """
    array = job.target.open_readonly()
    reader = job.source.open() if job.source is not None else None
    mismatches: list[list[str]] = []
    nbytes = 0
    for index in job.batch.indices(array.grid_shape):
        key = array.metadata.encode_chunk_key(index)
        stored = array.read_chunk_bytes(index)
        expected = job.expected.get(key, "absent")
        nbytes += len(stored or b"")
        if expected == "absent":
            mismatches.append([key, "not in the manifest"])
        elif stored is None and expected is not None:
            mismatches.append([key, "missing: the manifest records a stored chunk"])
        elif stored is not None and expected is None:
            mismatches.append([key, "unexpected: the manifest records a fill-value chunk (not stored)"])
        elif stored is not None and expected is not None and (seen := content_hash_like(expected[1], stored)) != (
            recorded := expected[1]
        ):
            mismatches.append([key, f"content hash {seen} != recorded {recorded}"])
        elif reader is not None:
            region = array.chunk_region(index)
            want = np.asarray(reader.read(region)).astype(array.dtype, copy=False)
            got = array.read_chunk(index) if stored is None else array.decode_chunk(index, stored)[
                tuple(slice(0, s.stop - s.start) for s in region)]  # fmt: skip
            if not np.array_equal(got, want, equal_nan=array.dtype.kind in "fc"):
                mismatches.append([key, "data differs from the source"])
    return {"checked": job.batch.size, "bytes": nbytes, "mismatches": mismatches}


def configure(task_: Task[..., Any], execution: Execution, **options: Any) -> Task[..., Any]:
    """The task with the run's retry policy, timeout and refresh settings (and any other ``options``)."""
    return task_.with_options(
        **retry_policy(execution),
        timeout_seconds=execution.timeout_seconds,
        refresh_cache=execution.refresh or None,
        **options,
    )


_METADATA_POLICY: dict[str, Any] = dict(**_DEFAULT_POLICY, cache_policy=NO_CACHE)


@task(name="create-array", task_run_name="create array {path!r}", **_METADATA_POLICY)
def create_array(store: StoreRef, path: str, metadata: ArrayMetadata, overwrite: bool) -> TargetRef:
    """Create the target array (create-only metadata: identical metadata attaches, a difference fails)."""
    return create_target(store, path, metadata, overwrite=overwrite)


@task(name="write-manifest", task_run_name="write manifest of {target.path!r}", **_METADATA_POLICY)
def record_completion(target: TargetRef, records: list[list[Any]]) -> int:
    """Write the completion manifest of a finished array; returns the number of chunks recorded."""
    return len(write_manifest(target, records).chunks)


@task(name="consolidate-metadata", task_run_name="consolidate metadata", **_METADATA_POLICY)
def consolidate(store: StoreRef) -> None:
    """Write the consolidated metadata of the group at the store's root."""
    zarrcore.consolidate_metadata(store.open())
