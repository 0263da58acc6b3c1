"""Flow runs at a terminal: run a flow in this process with a progress bar and print its summary,
or describe an array or group. Used by the ``zarrflow`` command and ``make demo``."""

from __future__ import annotations

import json
import os
from typing import Any

__all__ = ["ENTRYPOINTS", "terminal_defaults", "run_in_process", "print_summary", "describe"]

#: Flow name -> entrypoint, for ``prefect flow-run retry ID --entrypoint ...``.
ENTRYPOINTS = {
    "ingest": "flows/ingest.py:ingest",
    "verify": "flows/verify.py:verify",
    "copy": "flows/copy.py:copy_array",
    "append": "flows/append.py:append",
}

#: Seconds to wait for Prefect's embedded server. Its first start on a new ``PREFECT_HOME`` creates and
#: migrates the database, which takes longer than Prefect's default of 20 s on a small, busy machine.
EMBEDDED_SERVER_STARTUP_SECONDS = 120


def terminal_defaults(verbose: bool) -> None:
    """Prefect settings for a run at a terminal, each only where the user has not set it: no analytics,
    warnings only (unless ``verbose``), and time for the embedded server's first start."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", str(EMBEDDED_SERVER_STARTUP_SECONDS))
    if not verbose:
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")


def run_in_process(flow_fn: Any, parameters: dict[str, Any], console: Any) -> dict[str, Any] | None:
    """Run a flow in this process with a progress bar; print and return its summary, or print its error."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from flows import batchrun

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=False) as bar:  # fmt: skip
        tasks: dict[str, Any] = {}

        def listen(what: str, done: int, total: int) -> None:
            if what not in tasks:
                tasks[what] = bar.add_task(what, total=total)
            bar.update(tasks[what], completed=done, total=total)

        batchrun.listeners.append(listen)
        try:
            state = flow_fn(**parameters, return_state=True)
        finally:
            batchrun.listeners.remove(listen)
    run_id = state.state_details.flow_run_id
    if state.is_completed():
        result = state.result()
        print_summary(result, console)
        console.print(f"[green]{flow_fn.name} completed[/green] (flow run {run_id})")
        return result  # type: ignore[no-any-return]
    console.print(f"[red]{flow_fn.name} {state.name.lower()}[/red] (flow run {run_id}): {state.message}")
    error = state.result(raise_on_failure=False)
    if isinstance(error, BaseException):
        console.print(str(error))
    entrypoint = ENTRYPOINTS.get(flow_fn.name, "flows/<module>.py:<flow>")
    console.print(f"Retry only what failed with: prefect flow-run retry {run_id} --entrypoint {entrypoint}",
                  markup=False)  # fmt: skip
    return None


def print_summary(result: dict[str, Any], console: Any) -> None:
    """A flow's summary: each list of rows as aligned ``name : value`` blocks, other entries as one line."""
    plain = {k: v for k, v in result.items() if not (isinstance(v, list) and v and isinstance(v[0], dict))}
    if plain:
        width = max(len(k) for k in plain)
        console.print("\n".join(f"  {k:<{width}} : {v}" for k, v in plain.items()), highlight=False, markup=False)
    for name, rows in result.items():
        if name in plain:
            continue
        for row in rows:
            width = max(len(k) for k in row)
            console.print("\n".join(f"  {k:<{width}} : {v}" for k, v in row.items()), highlight=False, markup=False)


def describe(url: str, path: str, console: Any) -> int:
    """Describe the array or group at ``url`` (``path``): layout, codecs, chunks stored and bytes.
    Returns 0, or prints the error (a bad URL or path, no node there, unreadable metadata) and returns 1."""
    from zarrcore.errors import ZarrcoreError

    try:
        return _describe(url, path, console)
    except ZarrcoreError as exc:
        from rich.markup import escape

        console.print(f"[red]error:[/red] {escape(f'{type(exc).__name__}: {exc}')}")
        return 1


def _describe(url: str, path: str, console: Any) -> int:
    import zarrcore
    from flows.bookkeeping import is_bookkeeping
    from flows.ledger import read_manifest
    from zarrcore.info import codecs_of

    node = zarrcore.open(url, path=path)
    arrays = [node] if isinstance(node, zarrcore.Array) else []
    if isinstance(node, zarrcore.Group):
        console.print(node.tree())
        stack = [node]
        while stack:
            for child in stack.pop().members().values():
                (arrays if isinstance(child, zarrcore.Array) else stack).append(child)  # type: ignore[arg-type]
    for a in arrays:
        m = a.metadata
        base = f"{a.path}/" if a.path else ""
        skip = {base + k for k in (*m.metadata_keys(), ".zattrs")}
        stored = [k for k in a.store.list(base) if k not in skip and not is_bookkeeping(k[len(base) :])]
        nbytes = sum(a.store.size(k) for k in stored)
        manifest = read_manifest(a.store, a.path)
        rows = [
            ("array", a.url), ("zarr format", m.zarr_format), ("shape", a.shape), ("dtype", a.dtype),
            ("chunks", a.chunks if a.shards is None else f"{a.chunks} in shards of {a.shards}"),
            ("fill value", a.fill_value), ("codecs", json.dumps(codecs_of(m))),
            ("shards stored" if a.shards else "chunks stored", f"{len(stored)} of {a.nshards}"),
            ("bytes stored", nbytes),
            ("bytes (uncompressed)", a.nbytes),
            ("manifest", f"{len(manifest.chunks)} chunks recorded" if manifest else "none (not ingested by a flow)"),
        ]  # fmt: skip
        width = max(len(k) for k, _ in rows)
        console.print("\n".join(f"{k:<{width}} : {v}" for k, v in rows), highlight=False, markup=False)
        console.print()
    return 0
