"""The ``append`` flow: land whatever NetCDF4/HDF5 files (or Zarr datasets written by xarray) are new
under a pattern in one growing Zarr dataset that xarray opens, each file exactly once, published atomically.

1. ``plan-append`` lists the files, skips those already landed (same size and version; a changed file
   is an error naming it), reads the rest's coordinates, static variables and identity, orders them
   along the dimension and records the commit's intent (creating the dataset on the first run).
2. ``write-dataset-units`` tasks write the commit's chunks in batches on the task runner.
3. ``commit-dataset`` publishes the commit with one PUT of the consolidated metadata.

A crashed, cancelled or failed run is rerun (UI, CLI, schedule): it plans the same commit and every
finished batch is a cache hit. See docs/datasets.md.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import numpy as np
from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from pydantic import Field

from flows.append_tasks import UnitsJob, commit_dataset, transaction_of, write_dataset_units
from flows.axis import axis_values, describe_value
from flows.batchrun import run_batches
from flows.credentials import CredentialsBlock, with_credentials
from flows.landing import BatchesFailed
from flows.ledger import ledger_at
from flows.params import ArrayPath, DatasetLayout, Execution, StorageOptions, StoreURL, WaitSeconds
from flows.sources.listing import list_sources
from flows.sources.pieces import close_open_files, planning_piece, unchanged
from flows.stores import StoreRef
from flows.tasks import configure, retry_policy
from flows.validation import checked_flow
from flows.writer import hold_writer
from zarrcore.datasets import Piece, create_dataset, open_dataset
from zarrcore.errors import NotFound

__all__ = ["append", "AppendPlan", "plan_append"]

SourcePattern = Annotated[
    str,
    Field(description="The files to land: a path, a glob on local disk (/data/raw/*.nc) or on a store URL "
          "(s3://bucket/raw/**/*.nc, gs://..., az://...); Zarr datasets written by xarray match as one source "
          "each (/data/raw/*.zarr)."),
]  # fmt: skip


OnChanged = Annotated[
    Literal["error", "rewrite"],
    Field(description="What to do with a landed file whose content changed: 'error' fails the run naming it, "
          "with nothing written; 'rewrite' rewrites its region with the new values (published atomically, the "
          "chunks it shares with its neighbours merged) when its coordinate values and static variables are "
          "those it landed with, and records its new identity."),
]  # fmt: skip


#: Files planned at once (each holds its file open and a block cache of at most 4 MiB meanwhile).
PLANNING_THREADS = 4


@dataclass
class AppendPlan:
    """What a run lands: the commit (``None`` when nothing is new) and its sources in placement order."""

    commit: int | None
    uid: str
    mode: str
    listed: int
    skipped: int
    variables: tuple[str, ...]
    sources: list[dict[str, Any]] = field(default_factory=list)


def _pieces(urls: list[str], options: dict[str, Any], variables: list[str] | None, dim: str,
            landed: dict[str, Any]) -> tuple[list[Piece], int]:  # fmt: skip
    todo = [u for u in urls if not unchanged(u, options, landed.get(u))]
    # A few files at a time: one file's content hash and reads overlap another's HDF5 parsing.
    with ThreadPoolExecutor(max_workers=PLANNING_THREADS) as pool:
        pieces = list(pool.map(lambda url: planning_piece(url, options, variables, dim), todo))
    return pieces, len(urls) - len(todo)


@task(name="plan-append", task_run_name="plan the append to {path!r}", **retry_policy(Execution()),
      cache_policy=NO_CACHE)  # fmt: skip
def plan_append(pattern: str, source_options: dict[str, Any], store: StoreRef, path: str, dim: str,
                layout: DatasetLayout, on_changed: str = "error") -> AppendPlan:  # fmt: skip
    """List, skip, check, order and record the intent of one commit (see the module's docstring). With
    ``on_changed="rewrite"`` and changed landed files, the commit is their rewrite (mode ``rewrite``);
    the new files are the next plan's."""
    logger = get_run_logger()
    urls = list_sources(pattern, source_options)
    if not urls:
        raise FileNotFoundError(f"no files match {pattern!r}")
    try:
        ds = open_dataset(store.open(), path)
    except NotFound:
        ds = None
    pieces, skipped = _pieces(urls, source_options, layout.variables, dim, ds.landed() if ds else {})
    if not pieces:
        assert ds is not None
        return AppendPlan(None, ds.uid, ds.mode, len(urls), skipped, tuple(ds.variables))
    if ds is None:
        first = min(pieces, key=lambda p: p.variables[dim].read()[0].item())
        axis = axis_values(layout.region, first.variables[dim]) if layout.region else None
        ds = create_dataset(store.open(), path, template=first, dim=dim, chunks=layout.chunks, shards=layout.shards,
                            zarr_format=layout.zarr_format, axis=axis, exist_ok=True)  # fmt: skip
        logger.info("created the dataset %s (%s mode): %s", ds, ds.mode, ds.layout.arrays[dim].chunks)
    txn = ds.begin_rewrite(pieces) if on_changed == "rewrite" else None
    if txn is None:
        txn = ds.begin_region(pieces) if ds.mode == "region" else ds.begin_append(pieces)
    if txn is None:
        return AppendPlan(None, ds.uid, ds.mode, len(urls), skipped, tuple(ds.variables))
    coord = {p.source.key: p.variables[dim] for p in pieces if p.source is not None}
    rows = []
    for place in txn.placements:
        assert place.source is not None
        values = coord[place.source.key]
        rows.append({"file": place.source.key, "first": describe_value(values.attrs, values.read()[0]),
                     "last": describe_value(values.attrs, values.read()[-1]), "steps": place.stop - place.start,
                     "start": place.start, "stop": place.stop})  # fmt: skip
    logger.info("commit %d: %d %s files, %d units", txn.number, len(rows),
                "changed" if txn.mode == "rewrite" else "new", len(txn.units))  # fmt: skip
    return AppendPlan(txn.number, ds.uid, txn.mode if txn.mode == "rewrite" else ds.mode, len(urls), skipped,
                      tuple(ds.variables), rows)  # fmt: skip


def _jobs(plan: AppendPlan, store: StoreRef, path: str, execution: Execution,
          source_options: dict[str, Any]) -> list[UnitsJob]:  # fmt: skip
    assert plan.commit is not None
    txn = transaction_of(store, path, plan.commit)
    urls = [row["file"] for row in plan.sources]
    jobs, start, size = [], 0, 0

    def close(stop: int) -> None:
        units = txn.units[start:stop]
        digest = hashlib.sha256("".join(u.token for u in units).encode()).hexdigest()
        sources = {i: urls[i] for u in units for i in u.placements}
        jobs.append(UnitsJob(store=store, path=path, uid=plan.uid, commit=plan.commit, start=start, stop=stop,
                             digest=digest, sources=dict(sorted(sources.items())), source_options=source_options,
                             variables=plan.variables, chunk_concurrency=execution.chunk_concurrency))  # fmt: skip

    for i, unit in enumerate(txn.units):
        meta = txn.layout.arrays[unit.array]
        size += int(np.prod(meta.chunks)) * meta.dtype.itemsize
        if size >= execution.batch_bytes or i + 1 - start >= execution.max_chunks_per_batch:
            close(i + 1)
            start, size = i + 1, 0
    if start < len(txn.units):
        close(len(txn.units))
    return jobs


@checked_flow(name="append")
def append(
    source: SourcePattern,
    destination: StoreURL,
    dim: str = "time",
    group: ArrayPath = "",
    layout: DatasetLayout = DatasetLayout(),  # noqa: B008 - an immutable pydantic default, shown in the UI
    execution: Execution = Execution(),  # noqa: B008
    storage_options: StorageOptions = {},  # noqa: B006 - validated and never mutated
    source_storage_options: StorageOptions = {},  # noqa: B006
    wait_for_writer_seconds: WaitSeconds = 0.0,
    credentials_block: CredentialsBlock = None,
    source_credentials_block: CredentialsBlock = None,
    on_changed: OnChanged = "error",
) -> dict[str, Any]:
    """Land the new files matching ``source`` in the dataset at ``destination`` (and ``group``).

    Args:
        source: The files: a path or glob, on local disk or a store URL (s3://bucket/raw/*.nc).
        destination: Store URL of the dataset (a local path, file://, s3://, gs://, az://).
        dim: The dimension the files follow each other along (its coordinate orders them).
        group: Path of the dataset's group inside the store ('' for the store root).
        layout: Chunks, shards, format, variables and region mode of a new dataset.
        execution: Batching, concurrency, retries and task runner.
        storage_options: Non-secret options of the destination store (endpoint_url, region, ...).
        source_storage_options: Non-secret options of the source files' store.
        wait_for_writer_seconds: How long to wait while another flow run writes the dataset (default: fail
            at once, naming it). A retry of the same flow run is the same writer and never waits.
        credentials_block: Name of a Prefect Secret block holding the destination store's credentials.
        source_credentials_block: Name of a Prefect Secret block holding the source files' store credentials.
        on_changed: A landed file whose content changed: 'error' fails the run naming it, with nothing
            written; 'rewrite' rewrites its region with the new values (published atomically, the values of
            neighbours in shared chunks kept) if its coordinate values and static variables are unchanged.
    """
    logger = get_run_logger()
    store = StoreRef.of(destination, with_credentials(storage_options, credentials_block))
    store = store.at(store.open().url)
    ledger_at(store, group, None)  # the results block is saved before any task (see flows.landing)
    with hold_writer(store, group, wait_seconds=wait_for_writer_seconds) as claim:
        source_options = with_credentials(source_storage_options, source_credentials_block)
        try:
            summary = _land(source, store, group, dim, layout, execution, source_options, claim, on_changed)
        finally:
            close_open_files()  # planning leaves files open for the write tasks; a refused plan has none
    _artifacts(summary)
    logger.info("append: %d files landed, %d skipped; %s now %s", len(summary["landed"]), summary["skipped"],
                summary["dataset"], summary["sizes"])  # fmt: skip
    return summary


def _land(source: str, store: StoreRef, group: str, dim: str, layout: DatasetLayout, execution: Execution,
          source_storage_options: dict[str, Any], claim: Any, on_changed: str = "error") -> dict[str, Any]:  # fmt: skip
    summary: dict[str, Any] = {"rewritten": []}
    for _ in range(2):  # a rewrite of the changed files, then the append of the new ones
        plan = plan_append(source, dict(source_storage_options), store, group, dim, layout, on_changed)
        summary.update(listed=plan.listed, skipped=plan.skipped, landed=plan.sources)
        _write(plan, store, group, execution, source_storage_options, claim, summary)
        if plan.mode != "rewrite":
            break
        summary.update(rewritten=plan.sources, landed=[])
    ds = open_dataset(store.open(), group)
    coord = ds.coordinate()
    attrs = ds.layout.arrays[dim].attributes
    summary.update(sizes=ds.sizes, extent=ds.extent, mode=ds.mode, dataset=store.url + (f"/{group}" if group else ""),
                   covered=[describe_value(attrs, coord[0]), describe_value(attrs, coord[-1])] if len(coord) else [],
                   missing=[list(r) for r in ds.missing()] if ds.mode == "region" else [])  # fmt: skip
    return summary


def _write(plan: AppendPlan, store: StoreRef, group: str, execution: Execution, source_storage_options: dict[str, Any],
           claim: Any, summary: dict[str, Any]) -> None:  # fmt: skip
    """Write the plan's units in batches on the task runner and publish its commit."""
    if plan.commit is not None:
        writer = configure(write_dataset_units, execution, result_storage=ledger_at(store, group, None))
        jobs = _jobs(plan, store, group, execution, dict(source_storage_options))
        try:
            [outcomes] = run_batches([(writer, jobs)], execution, key="append-progress", what="append: units written")
        finally:
            close_open_files()  # the files the tasks read in this process
        failed = [o for o in outcomes if not o.ok]
        summary.update(batches=len(outcomes), batches_cached=sum(o.cached for o in outcomes),
                       batches_failed=len(failed))  # fmt: skip
        if failed:
            lines = [f"units {o.job.start}-{o.job.stop}: {o.error}" for o in failed[:10]]
            raise BatchesFailed(f"{len(failed)} of {len(outcomes)} unit batches failed; retry the flow run to redo "
                                "only those:\n  " + "\n  ".join(lines))  # fmt: skip
        claim.check()  # a writer whose claim lapsed must not publish
        summary.update(configure(commit_dataset, execution)(store, group, plan.commit))
        summary["commit"] = plan.commit


def _artifacts(summary: dict[str, Any]) -> None:
    rows = summary["landed"] or [{"file": "(no new files)", "first": "", "last": "", "steps": 0, "start": "",
                                  "stop": ""}]  # fmt: skip
    create_table_artifact(rows, key="append-files", description="append: files landed in this run")
    if summary["rewritten"]:
        create_table_artifact(summary["rewritten"], key="append-rewritten",
                              description="append: changed files whose regions this run rewrote")  # fmt: skip
    dims = ", ".join(f"{k}={v}" for k, v in summary["sizes"].items())
    covered = " to ".join(summary["covered"]) or "nothing yet"
    create_markdown_artifact(
        f"**{summary['dataset']}** ({summary['mode']} mode)\n\n* dims: {dims}\n* covered: {covered}\n"
        f"* files this run: {len(summary['landed'])} landed, {len(summary['rewritten'])} rewritten, "
        f"{summary['skipped']} already landed\n"
        + (f"* missing ranges: {summary['missing']}\n" if summary["missing"] else ""),
        key="append-dataset", description="append: the dataset after this run",
    )
