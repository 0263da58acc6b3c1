"""``make demo``: ingest a synthetic array into ``./data/demo.zarr``, verify it, print a summary; then
land daily NetCDF files in the dataset ``./data/dataset.zarr``, half first, then the rest.

Run it again and every batch is skipped: the finished batches are found in the ledger, so nothing
is rewritten. No Prefect server has to be started: without ``PREFECT_API_URL`` Prefect runs its
embedded server, with its database under ``./data/.prefect`` (unless ``PREFECT_HOME`` is set).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from flows.console import terminal_defaults

__all__ = ["main", "DEMO_SOURCE"]

#: 2048 x 2048 float32 (16 MiB) in 64 chunks of 256 x 256, written in 8 batches of 8 chunks.
DEMO_SOURCE = {"kind": "synthetic", "shape": [2048, 2048], "dtype": "float32", "seed": 42, "pattern": "smooth"}
DEMO_LAYOUT = {"chunks": [256, 256]}
DEMO_EXECUTION = {"max_workers": 4, "max_chunks_per_batch": 8}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flows.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default="data", help="where demo.zarr (and Prefect's home) go (default: ./data)")
    parser.add_argument("-v", "--verbose", action="store_true", help="show Prefect's run logs")
    args = parser.parse_args(argv)
    root = Path(args.dir).absolute()
    root.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("PREFECT_HOME", str(root / ".prefect"))
    terminal_defaults(args.verbose)

    from flows.console import consoles, describe, run_in_process
    from flows.ingest import ingest
    from flows.verify import verify

    console, errors = consoles()  # never wrapped: the printed paths and commands stay one line
    destination = str(root / "demo.zarr")
    home = os.environ["PREFECT_HOME"]
    where = os.environ.get("PREFECT_API_URL") or f"Prefect's embedded server (PREFECT_HOME={home})"
    console.print(f"[bold]zarrflow demo[/bold]: synthetic 2048 x 2048 float32 -> {destination} via {where}")
    params = {"source": DEMO_SOURCE, "destination": destination, "array": "synthetic",
              "layout": DEMO_LAYOUT, "execution": DEMO_EXECUTION}  # fmt: skip
    landed = run_in_process(ingest, params, console, errors, verbose=args.verbose)
    if landed is None:
        return 1
    counts = landed["targets"][0]
    if counts["batches_cached"] == counts["batches"]:
        console.print(f"[bold]every batch skipped[/bold]: all {counts['batches']} batches were finished by an earlier "
                      "run (cached), no chunk was rewritten")  # fmt: skip
    else:
        console.print(f"[bold]{counts['chunks_written']} chunks written[/bold], {counts['chunks_skipped']} skipped; "
                      "run the demo again and every batch is skipped (cached)")  # fmt: skip
    checked = run_in_process(verify, {"destination": destination, "array": "synthetic", "source": DEMO_SOURCE},
                             console, errors, verbose=args.verbose)  # fmt: skip
    if checked is None:
        return 1
    describe(destination, "synthetic", console)
    console.print(f"Open it with zarr-python: zarr.open_group({destination!r})['synthetic']", markup=False)
    from flows.demo_dataset import run

    return run(root, console)


if __name__ == "__main__":
    sys.exit(main())
