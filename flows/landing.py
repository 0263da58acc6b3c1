"""The steps of landing a source in Zarr, shared by the ``ingest`` and ``copy`` flows (:func:`land`).

1. :func:`plan_targets` opens the source and validates the layout of every target array: bad
   parameters fail before anything is written.
2. The run takes the writer claim of every target array (:mod:`flows.writer`) and holds it to the end:
   a second live run into one of them fails before it writes anything, naming this one.
3. :func:`create_targets` creates the arrays (create-only metadata, before any chunk).
4. :func:`write_targets` maps ``write_chunk_batch`` over the chunk batches of every target.
5. The claims are checked once more, then :func:`finish_targets` writes the completion manifests and
   consolidated metadata, publishes the summary artifact, and raises if any batch failed, so the run
   can be retried.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from prefect import get_run_logger
from prefect.artifacts import create_table_artifact
from prefect.utilities.annotations import quote

from flows.batchrun import BatchOutcome, run_batches
from flows.ledger import ledger_at, ledger_for
from flows.params import ArrayLayout, Execution
from flows.sources import SourceSpec
from flows.stores import StoreRef
from flows.targets import TargetRef, plan_batches, target_metadata
from flows.tasks import BatchJob, configure, consolidate, create_array, record_completion, write_chunk_batch
from flows.writer import hold_writers

if TYPE_CHECKING:
    from zarrcore.metadata import ArrayMetadata

__all__ = ["Target", "BatchesFailed", "land", "summary_row", "plan_targets", "create_targets", "write_targets",
           "finish_targets"]  # fmt: skip


class BatchesFailed(RuntimeError):
    """Some chunk batches failed after their retries; retrying the flow run redoes only those."""


@dataclass
class Target:
    """A created target array, the source feeding it, and, once written, how its batches ended."""

    ref: TargetRef
    source: SourceSpec
    itemsize: int
    dtype: str = ""
    outcomes: list[BatchOutcome] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failed(self) -> list[BatchOutcome]:
        return [o for o in self.outcomes if not o.ok]

    def counts(self) -> dict[str, Any]:
        """Chunks written, skipped (finished by an earlier run) and failed; bytes and throughput."""
        written = sum(o.job.batch.size for o in self.outcomes if o.ok and not o.cached)
        skipped = sum(o.job.batch.size for o in self.outcomes if o.cached)
        failed = sum(o.job.batch.size for o in self.outcomes if not o.ok)
        fresh = [o.result for o in self.outcomes if o.ok and not o.cached]
        stored = sum(r[1] for res in fresh for r in res["chunks"])  # type: ignore[index]
        raw = sum(res["raw"] for res in fresh)  # type: ignore[index]
        return {
            "array": self.ref.identity,
            "shape": list(self.ref.shape),
            "dtype": self.dtype,
            "chunks": list(self.ref.chunks),
            "batches": len(self.outcomes),
            "batches_cached": sum(o.cached for o in self.outcomes),
            "batches_failed": len(self.failed),
            "chunks_written": written,
            "chunks_skipped": skipped,
            "chunks_failed": failed,
            "bytes_written": stored,
            "bytes_read": raw,
            "mb_per_s": round(raw / 1e6 / self.seconds, 2) if self.seconds > 0 else 0.0,
            "seconds": round(self.seconds, 3),
        }


def land(source: SourceSpec, destination: StoreRef, array: str, layout: ArrayLayout, execution: Execution,
         results: StoreRef | None, *, key: str, wait_for_writer_seconds: float = 0.0) -> dict[str, Any]:  # fmt: skip
    """Land ``source`` in its target arrays while holding their writer claims; the run's summary."""
    planned = plan_targets(source, destination, array, layout, results)
    with hold_writers(destination, [p.path for p in planned], wait_seconds=wait_for_writer_seconds) as claims:
        targets = create_targets(planned, destination, layout, execution)
        write_targets(targets, execution, results=results, key=key)
        for claim in claims:
            claim.check()  # a run whose claim lapsed (another run took over) must not mark the arrays done
        return finish_targets(targets, destination, execution, key=key)


@dataclass(frozen=True)
class Planned:
    """A target array validated but not yet created: its path, source and metadata."""

    path: str
    source: SourceSpec
    metadata: ArrayMetadata


def plan_targets(source: SourceSpec, destination: StoreRef, array: str, layout: ArrayLayout,
                 results: StoreRef | None = None) -> list[Planned]:  # fmt: skip
    """Open the source and validate the layout of every target (nothing is written to the store),
    and save the ledgers' blocks."""
    planned = []
    for path, spec in source.targets(array):
        reader = spec.open()
        planned.append(Planned(path, spec, target_metadata(layout, reader)))
    # The ledgers' result-storage blocks are saved now, before any task: an API write made while the
    # server records a task run's events can meet a locked SQLite database and wait 1-2 s to retry.
    store = destination.at(destination.open().url)  # at the store's own URL, as the targets will be
    for p in planned:
        ledger_at(store, p.path.strip("/"), results)
    return planned


def create_targets(planned: list[Planned], destination: StoreRef, layout: ArrayLayout,
                   execution: Execution) -> list[Target]:  # fmt: skip
    """Create the target arrays (create-only metadata writes; an existing identical array is kept)."""
    logger = get_run_logger()
    targets = []
    create = configure(create_array, execution)
    for p in planned:
        ref = create(destination, p.path, p.metadata, layout.overwrite)
        logger.info("target %s: shape %s, chunks %s, %s", ref.identity, ref.shape, ref.chunks, p.metadata.dtype)
        targets.append(Target(ref, p.source, p.metadata.dtype.itemsize, str(p.metadata.dtype)))
    return targets


def write_targets(targets: list[Target], execution: Execution, *, results: StoreRef | None, key: str) -> None:
    """Write every target's chunk batches (finished batches are cache hits) and record the outcomes."""
    groups = []
    for t in targets:
        task_ = configure(write_chunk_batch, execution, result_storage=ledger_for(t.ref, results))
        jobs = [BatchJob(target=t.ref, source=t.source, batch=b, chunk_concurrency=execution.chunk_concurrency,
                         batches_at_once=execution.max_workers,
                         chunk_timeout_seconds=execution.chunk_timeout_seconds)
                for b in plan_batches(t.ref, t.itemsize, execution)]  # fmt: skip
        groups.append((task_, jobs))
    t0 = time.monotonic()
    outcomes = run_batches(groups, execution, key=f"{key}-progress", what=f"{key}: chunk batches written")
    for t, group in zip(targets, outcomes, strict=True):
        t.outcomes = group
        t.seconds = time.monotonic() - t0


def summary_row(counts: dict[str, Any]) -> dict[str, Any]:
    """One array's row of the summary artifact, narrow enough to read: its URL and layout, then what the
    run did (chunks written / skipped because finished earlier / failed, bytes stored, speed)."""
    return {
        "array": counts["array"],
        "shape": " x ".join(map(str, counts["shape"])) or "()",
        "dtype": counts["dtype"],
        "chunks": " x ".join(map(str, counts["chunks"])) or "()",
        "written / skipped / failed": f"{counts['chunks_written']} / {counts['chunks_skipped']} / "
        f"{counts['chunks_failed']}",
        "stored": _size(counts["bytes_written"]),
        "MB/s": counts["mb_per_s"],
        "seconds": counts["seconds"],
    }


def _size(nbytes: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if nbytes < 1024 or unit == "GiB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1024  # type: ignore[assignment]
    return f"{nbytes} B"


def finish_targets(targets: list[Target], destination: StoreRef, execution: Execution, *, key: str) -> dict[str, Any]:
    """Manifests and consolidated metadata for finished targets, the summary artifact; raise on failures."""
    logger = get_run_logger()
    record = configure(record_completion, execution)
    rows = [t.counts() for t in targets]
    description = f"{key}: the arrays landed, and their chunks written, skipped and failed"
    create_table_artifact([summary_row(row) for row in rows], key=f"{key}-summary", description=description)
    for row in rows:
        logger.info(
            "%s: %d chunks written, %d skipped (already done), %d failed; %d bytes in %.2f s",
            row["array"], row["chunks_written"], row["chunks_skipped"], row["chunks_failed"],
            row["bytes_written"], row["seconds"],
        )  # fmt: skip
    failed = [(t, o) for t in targets for o in t.failed]
    if failed:
        lines = [f"{t.ref.identity} chunks {o.job.batch.start}-{o.job.batch.stop}: {o.error}" for t, o in failed[:10]]
        total = sum(len(t.outcomes) for t in targets)
        raise BatchesFailed(
            f"{len(failed)} of {total} chunk batches failed; retry the flow run to redo only those:\n  "
            + "\n  ".join(lines)
        )
    for t in targets:
        # quoted: Prefect would otherwise visit every one of the (many) records looking for futures
        record(t.ref, quote([rec for o in t.outcomes for rec in o.result["chunks"]]))  # type: ignore[index]
    if any(t.ref.path for t in targets):
        configure(consolidate, execution)(destination)
        logger.info("consolidated metadata written at %s", destination.url)
    return {"targets": rows}
