"""The ``verify`` flow: read every chunk back with bounded concurrency and check it against the
completion manifest (and, optionally, against the source)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from prefect import get_run_logger
from prefect.artifacts import create_table_artifact

import zarrcore
from flows.batchrun import BatchOutcome, run_batches
from flows.credentials import CredentialsBlock, with_credentials
from flows.ledger import Manifest, read_manifest
from flows.params import ArrayPath, Execution, StorageOptions, StoreURL
from flows.sources import SourceParam, SourceSpec
from flows.stores import StoreRef
from flows.targets import TargetRef, open_target, plan_batches
from flows.tasks import VerifyJob, configure, verify_chunk_batch
from flows.validation import checked_flow
from flows.verify_dataset import verify_dataset
from zarrcore.datasets import open_dataset
from zarrcore.errors import NotFound

__all__ = ["verify", "VerificationFailed"]

#: At most this many mismatching chunks are listed in the artifact and the error.
MAX_LISTED = 1000


class VerificationFailed(RuntimeError):
    """Stored chunks do not match the manifest or the source (or could not be read)."""


@dataclass
class _Checked:
    ref: TargetRef
    itemsize: int
    manifest: Manifest
    source: SourceSpec | None
    chunk_key: Any
    problems: list[list[str]] = field(default_factory=list)
    outcomes: list[BatchOutcome] = field(default_factory=list)


def _arrays_below(node: zarrcore.Array | zarrcore.Group) -> list[zarrcore.Array]:
    if isinstance(node, zarrcore.Array):
        return [node]
    found: list[zarrcore.Array] = []
    for child in node.members().values():
        found.extend(_arrays_below(child))
    return found


def is_dataset(store: StoreRef, path: str) -> bool:
    """Whether a dataset that ``append`` lands is at ``path``."""
    try:
        open_dataset(store.open(), path)
    except NotFound:
        return False
    return True


def open_checks(destination: StoreRef, array: str, source: SourceSpec | None) -> list[_Checked]:
    """The arrays to check (the array at ``array``, or every array below a group there) and their manifests."""
    if source is not None:
        sources = dict(source.targets(array))
        paths = list(sources)
    else:
        node = zarrcore.open(destination.open(), path=array)
        sources = {}
        paths = [a.path for a in _arrays_below(node)]
    checks = []
    for path in paths:
        arr, ref = open_target(destination, path)
        manifest = read_manifest(arr.store, arr.path)
        if manifest is None:
            raise VerificationFailed(f"{ref.identity}: no completion manifest; ingest has not finished this array")
        check = _Checked(ref, arr.dtype.itemsize, manifest, sources.get(path), arr.metadata.encode_chunk_key)
        if manifest.fingerprint != ref.fingerprint or manifest.incarnation != ref.incarnation:
            check.problems.append(["(metadata)", "the manifest was written for another version of this array"])
        checks.append(check)
    return checks


def check_chunks(checks: list[_Checked], execution: Execution) -> None:
    """Map ``verify_chunk_batch`` over every array's batches and collect the problems."""
    groups = []
    for c in checks:
        jobs = []
        for batch in plan_batches(c.ref, c.itemsize, execution):
            keys = [c.chunk_key(i) for i in batch.indices(c.ref.grid_shape)]
            expected = {k: c.manifest.chunks[k] for k in keys if k in c.manifest.chunks}
            jobs.append(VerifyJob(target=c.ref, batch=batch, expected=expected, source=c.source))
        groups.append((configure(verify_chunk_batch, execution), jobs))
    outcomes = run_batches(groups, execution, key="verify-progress", what="verify: chunk batches checked")
    for c, group in zip(checks, outcomes, strict=True):
        c.outcomes = group
        for o in group:
            if o.ok:
                c.problems.extend(o.result["mismatches"])  # type: ignore[index]
            else:
                c.problems.append([f"chunks {o.job.batch.start}-{o.job.batch.stop}", f"not checked: {o.error}"])


def report(checks: list[_Checked]) -> dict[str, Any]:
    """Publish the summary (and the mismatching chunks, if any); raise if anything is wrong."""
    logger = get_run_logger()
    rows = [
        {
            "array": c.ref.identity,
            "chunks_checked": sum(o.result["checked"] for o in c.outcomes if o.ok),  # type: ignore[index]
            "bytes_read": sum(o.result["bytes"] for o in c.outcomes if o.ok),  # type: ignore[index]
            "problems": len(c.problems),
        }
        for c in checks
    ]
    create_table_artifact(rows, key="verify-summary", description="verify: chunks checked against the manifest")
    problems = [{"array": c.ref.identity, "chunk": key, "problem": why} for c in checks for key, why in c.problems]
    if problems:
        create_table_artifact(
            problems[:MAX_LISTED], key="verify-mismatches", description=f"verify: {len(problems)} chunks do not match"
        )
        lines = [f"{p['array']} {p['chunk']}: {p['problem']}" for p in problems[:20]]
        raise VerificationFailed(f"{len(problems)} chunks do not match:\n  " + "\n  ".join(lines))
    for row in rows:
        logger.info("%s: %d chunks match the manifest", row["array"], row["chunks_checked"])
    return {"arrays": rows}


@checked_flow(name="verify")
def verify(
    destination: StoreURL,
    array: ArrayPath = "data",
    source: SourceParam | None = None,
    execution: Execution = Execution(),  # noqa: B008 - an immutable pydantic default, shown in the UI
    storage_options: StorageOptions = {},  # noqa: B006 - validated and never mutated
    credentials_block: CredentialsBlock = None,
    files: str | None = None,
    source_storage_options: StorageOptions = {},  # noqa: B006
    source_credentials_block: CredentialsBlock = None,
) -> dict[str, Any]:
    """Check every stored chunk of ``array`` (or of every array below it) against its completion manifest;
    or, when ``array`` is a dataset that ``append`` lands, the dataset (see flows.verify_dataset).

    Args:
        destination: Store URL of the Zarr hierarchy.
        array: Path of the array, or of a group whose arrays are all checked, or of a dataset ('' for the root).
        source: Also compare the data with this source (as given to ingest).
        execution: Batching, concurrency and retries of the reads.
        storage_options: Non-secret options of the store.
        credentials_block: Name of a Prefect Secret block holding the store's credentials.
        files: For a dataset: also compare each landed file matching this pattern (as given to append)
            with its region of the dataset.
        source_storage_options: Non-secret options of the files' store.
        source_credentials_block: Name of a Prefect Secret block holding the files' store's credentials.
    """
    store = StoreRef.of(destination, with_credentials(storage_options, credentials_block))
    if source is None and is_dataset(store, array):
        files_options = with_credentials(source_storage_options, source_credentials_block)
        return verify_dataset(store, array, files, files_options, execution)
    if files:
        raise ValueError(f"files is for datasets, and {destination} {array!r} is not one; give source instead")
    checks = open_checks(store, array, source)
    check_chunks(checks, execution)
    return report(checks)
