"""``verify`` of a dataset: its metadata and ledger, every chunk of every variable (a task per
variable, on the run's task runner), and, given the files' pattern, each landed file's values against
its region (a task per file). Nothing is written. See :mod:`zarrcore.datasets.check`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from flows.batchrun import run_batches
from flows.params import Execution
from flows.sources.listing import list_sources
from flows.sources.pieces import close_open_files, planning_piece, writing_piece
from flows.stores import StoreRef
from flows.tasks import configure
from zarrcore.datasets import open_dataset
from zarrcore.datasets.check import Finding, check_chunks, check_file, check_structure
from zarrcore.datasets.ledger import gaps

__all__ = ["DatasetJob", "verify_dataset"]

#: At most this many problems are listed in the artifact and the error.
MAX_LISTED = 1000


@dataclass(frozen=True)
class DatasetJob:
    """One variable to read whole (``url`` empty) or one landed file to compare."""

    store: StoreRef
    path: str
    variable: str = ""
    url: str = ""
    source_options: dict[str, Any] = dataclasses.field(default_factory=dict)
    concurrency: int = 16


def _rows(found: list[Finding]) -> list[list[str]]:
    return [[f.where, f.problem] for f in found]


@task(name="read-dataset-variable", task_run_name="read every chunk of {job.variable}", cache_policy=NO_CACHE)
def read_variable(job: DatasetJob) -> dict[str, Any]:
    """Read and decode every stored chunk of one variable."""
    read = check_chunks(open_dataset(job.store.open(), job.path), job.variable, concurrency=job.concurrency)
    return {"variable": read.variable, "chunks": read.chunks, "bytes": read.bytes, "problems": _rows(read.problems)}


@task(name="compare-landed-file", task_run_name="compare {job.url}", cache_policy=NO_CACHE)
def compare_file(job: DatasetJob) -> dict[str, Any]:
    """One landed file's identity and values against the dataset."""
    ds = open_dataset(job.store.open(), job.path)
    landed = ds.landed()[job.url]
    identity = planning_piece(job.url, job.source_options, None, ds.dim).source
    try:
        values = writing_piece(job.url, job.source_options, ds.variables)
    except Exception as exc:  # a variable of the dataset is not in the file
        return {"file": job.url, "problems": [[job.url, f"cannot be read as landed: {exc}"]]}
    found = check_file(ds, landed, dataclasses.replace(values, source=identity))
    return {"file": job.url, "problems": _rows(found)}


def verify_dataset(store: StoreRef, path: str, files: str | None, source_options: dict[str, Any],
                   execution: Execution) -> dict[str, Any]:  # fmt: skip
    """Check the dataset at ``path``; raise ``VerificationFailed`` listing every problem."""
    from flows.verify import VerificationFailed

    logger = get_run_logger()
    ds = open_dataset(store.open(), path)
    structure, ledger = check_structure(ds)
    problems = _rows(structure)
    landed = ledger.landed if ledger is not None else {}
    listed = list_sources(files, source_options) if files else []
    not_landed = [u for u in listed if u not in landed]
    reads = [DatasetJob(store, path, variable=n, concurrency=execution.chunk_concurrency) for n in ds.variables]
    compares = [DatasetJob(store, path, url=u, source_options=source_options) for u in listed if u in landed]
    groups = [(configure(read_variable, execution), reads), (configure(compare_file, execution), compares)]
    try:
        read_out, compare_out = run_batches(groups, execution, key="verify-progress", what="verify: checks done")
    finally:
        close_open_files()
    rows = []
    for o in [*read_out, *compare_out]:
        if o.ok:
            assert o.result is not None
            problems.extend(o.result["problems"])
            if "variable" in o.result:
                rows.append({**{k: v for k, v in o.result.items() if k != "problems"},
                             "problems": len(o.result["problems"])})  # fmt: skip
        else:
            problems.append([o.job.variable or o.job.url, f"not checked: {o.error}"])
    pending = ledger.pending.number if ledger is not None and ledger.pending is not None else None
    summary = {"dataset": store.url + (f"/{path}" if path else ""), "mode": ds.mode, "sizes": ds.sizes,
               "variables": rows, "files_compared": sum(o.ok for o in compare_out), "not_landed": not_landed,
               "missing": [list(r) for r in gaps(landed.values(), ds.extent)] if ds.mode == "region" else [],
               "unfinished_commit": pending}  # fmt: skip
    create_table_artifact(rows or [{"variable": "(none)"}], key="verify-summary",
                          description="verify: every chunk of each variable read")  # fmt: skip
    if problems:
        listed_rows = [{"where": w, "problem": p} for w, p in problems[:MAX_LISTED]]
        create_table_artifact(listed_rows, key="verify-mismatches", description=f"verify: {len(problems)} problems")
        lines = [f"{w}: {p}" for w, p in problems[:20]]
        raise VerificationFailed(f"{len(problems)} problems in {summary['dataset']}:\n  " + "\n  ".join(lines))
    logger.info("%s: %d variables read whole (%d chunks), %d landed files compared, %d not landed",
                summary["dataset"], len(rows), sum(r["chunks"] for r in rows), summary["files_compared"],
                len(not_landed))  # fmt: skip
    return summary
