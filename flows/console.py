"""Flow runs at a terminal: run a flow in this process with a progress bar and print its summary,
or describe an array or group. Used by the ``zarrflow`` command and ``make demo``."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
import time
import traceback
from pathlib import Path
from typing import Any
from uuid import UUID

__all__ = ["ENTRYPOINTS", "terminal_defaults", "consoles", "run_in_process", "retry_command", "one_line",
           "print_summary", "describe"]  # fmt: skip

#: Flow name -> entrypoint, for ``prefect flow-run retry ID --entrypoint ...``: module paths, which load
#: from any folder wherever the package is installed (a script path would be resolved against the cwd).
ENTRYPOINTS = {
    "ingest": "flows.ingest.ingest",
    "verify": "flows.verify.verify",
    "copy": "flows.copy.copy_array",
    "append": "flows.append.append",
}

#: Seconds to wait for Prefect's embedded server. Its first start on a new ``PREFECT_HOME`` creates and
#: migrates the database, which takes longer than Prefect's default of 20 s on a small, busy machine.
EMBEDDED_SERVER_STARTUP_SECONDS = 120
#: At most this long, after a run on the embedded server, for it to record the run's last task run states.
SETTLE_SECONDS = 15.0


def terminal_defaults(verbose: bool) -> None:
    """Prefect settings for a run at a terminal, each only where the user has not set it: no analytics,
    time for the embedded server's first start, and unless ``verbose``, no console logs from Prefect
    (``zarrflow`` prints its own one-line errors; the API still gets warnings and errors, so the UI shows
    them) and no INFO logs sent to the API (a cost on every task run)."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", str(EMBEDDED_SERVER_STARTUP_SECONDS))
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "INFO" if verbose else "CRITICAL")
    if not verbose:
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")


def consoles() -> tuple[Any, Any]:
    """The output and error consoles. Lines are never wrapped by rich (``soft_wrap``): a printed command
    or path stays one line whatever the width, at a terminal or in a file."""
    from rich.console import Console

    return Console(soft_wrap=True), Console(stderr=True, soft_wrap=True, highlight=False)


def run_in_process(flow_fn: Any, parameters: dict[str, Any], console: Any, errors: Any = None,
                   verbose: bool = False) -> dict[str, Any] | None:  # fmt: skip
    """Run a flow in this process with a progress bar; print and return its summary, or print its error
    on one line (with the traceback when ``verbose``) and, where a retry can help, the command that retries it."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from flows import batchrun

    errors = errors if errors is not None else console
    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   console=console, transient=False)  # fmt: skip
    tasks: dict[str, Any] = {}

    def listen(what: str, done: int, total: int) -> None:
        if not tasks:
            bar.start()  # on the first batches: a run refused before them prints no empty bar
        if what not in tasks:
            tasks[what] = bar.add_task(what, total=total)
        bar.update(tasks[what], completed=done, total=total)

    batchrun.listeners.append(listen)
    try:
        state = flow_fn(**parameters, return_state=True)
    finally:
        batchrun.listeners.remove(listen)
        if tasks:
            bar.stop()
    run_id = state.state_details.flow_run_id
    settle_embedded_server(run_id)
    if state.is_completed():
        result = state.result()
        print_summary(result, console)
        console.print(f"[green]{flow_fn.name} completed[/green] (flow run {run_id})")
        return result  # type: ignore[no-any-return]
    error = state.result(raise_on_failure=False)
    cause = error if isinstance(error, BaseException) else state.message or state.name
    errors.print(f"error: {flow_fn.name} {state.name.lower()} (flow run {run_id}): {one_line(cause)}", markup=False)
    if verbose and isinstance(error, BaseException):
        errors.print("".join(traceback.format_exception(error)).rstrip(), markup=False)
    if retry_can_help(state, error):
        errors.print(f"Retry only what failed with: {retry_command(run_id, flow_fn.name)}", markup=False)
    return None


def one_line(cause: BaseException | str) -> str:
    """An error as one line: its type and message, a list in it joined with ``;`` (at most 3 items shown),
    and Python's ``overwrite=True`` said as the command line's ``--overwrite``."""
    text = f"{type(cause).__name__}: {cause}" if isinstance(cause, BaseException) else str(cause)
    lines = [line.strip() for line in text.splitlines() if line.strip()] or [type(cause).__name__]
    if len(lines) > 4:
        lines = [*lines[:4], f"and {len(lines) - 4} more"]
    return "; ".join(lines).replace(":;", ":").replace("overwrite=True", "--overwrite")


def retry_can_help(state: Any, error: Any) -> bool:
    """Whether retrying the same run may succeed: not when its parameters or the data they name are at
    fault (a refused parameter, a metadata conflict, a missing or malformed source, a verify mismatch)."""
    from prefect.exceptions import ParameterTypeError

    from flows.verify import VerificationFailed

    if state.is_crashed() or not isinstance(error, BaseException):
        return True
    return not isinstance(error, ValueError | TypeError | ParameterTypeError | VerificationFailed)


def retry_command(run_id: UUID, flow_name: str) -> str:
    """``prefect flow-run retry ID --entrypoint MODULE.FLOW``, runnable as printed from any folder: the
    ``prefect`` of this Python when the shell's ``PATH`` would find another, and the embedded server's
    ``PREFECT_HOME`` when no ``PREFECT_API_URL`` is set."""
    here = Path(sys.executable).with_name("prefect")
    found = shutil.which("prefect")
    prefect = "prefect" if not here.exists() or (found and Path(found).resolve() == here.resolve()) else str(here)
    home = os.environ.get("PREFECT_HOME") if "PREFECT_API_URL" not in os.environ else None
    env = f"PREFECT_HOME={shlex.quote(home)} " if home else ""
    entrypoint = ENTRYPOINTS.get(flow_name, "flows.<module>.<flow>")
    return f"{env}{shlex.quote(prefect)} flow-run retry {run_id} --entrypoint {entrypoint}"


def settle_embedded_server(flow_run_id: UUID) -> None:
    """On Prefect's embedded server (no ``PREFECT_API_URL``), wait until it has recorded the run's task run
    states: it stops when this process exits, and stopping it while it still writes them loses them (task
    runs left ``Running`` in its database) and prints its tracebacks. Bounded by ``SETTLE_SECONDS``."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.events.worker import EventsWorker
    from prefect.settings import PREFECT_API_URL

    if PREFECT_API_URL.value():
        return
    EventsWorker.drain_all()  # every event of this process has reached the server
    deadline = time.monotonic() + SETTLE_SECONDS
    seen: list[str] | None = None
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
            now = sorted(f"{r.id}:{r.state_type}" for r in runs)
            if all(r.state is not None and r.state.is_final() for r in runs):
                if now == seen:
                    return
                seen = now
            else:
                seen = None
            time.sleep(0.1)


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
    """Describe the array or group at ``url`` (``path``): layout, codecs, chunks stored and bytes; 0.
    A bad URL or path, no node there or unreadable metadata raises (``zarrcore.errors.ZarrcoreError``)."""
    return _describe(url, path, console)


def _describe(url: str, path: str, console: Any) -> int:
    import zarrcore
    from flows.bookkeeping import is_bookkeeping
    from flows.manifest import read_manifest
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
