"""``zarrflow``: run the flows from a shell.

    zarrflow ingest SOURCE DESTINATION [--array data] [--chunks 256,256] ...
    zarrflow verify DESTINATION [--array data] [--source SOURCE]
    zarrflow copy SOURCE DESTINATION [--array data] [--source-path PATH] [--chunks ...]
    zarrflow append SOURCE DESTINATION [--dim time] [--group PATH] [--chunks time=24,lat=256,lon=256]
                    [--variables a,b] [--region START,STOP,STEP] [--rewrite-changed] [--option ...]
                    [--source-option ...]
    zarrflow info URL [--path PATH]
    zarrflow serve [--file deployments/serve.py]

SOURCE is a ``.npy``, ``.npz`` (with ``--key``), ``.parquet``/``.arrow``/``.feather`` file, a Zarr URL,
``synthetic:SHAPE[:DTYPE[:SEED]]`` (e.g. ``synthetic:4096x4096:float32:7``), or a JSON source object.
``ingest`` of a NetCDF4/HDF5 file (``.nc``, ``.h5``...) lands it as a dataset, as ``append`` does; the
SOURCE of ``append`` is a path or glob of such files or of Zarr datasets written by xarray (``raw/*.zarr``),
on local disk or a store URL (``s3://b/raw/*.nc``).
Flows talk to ``PREFECT_API_URL`` when it is set; otherwise Prefect starts its embedded server for the
run, so nothing has to be started by hand (``info`` never imports Prefect). Local paths are made absolute
before the run is created. Exit status: 0 done; 2 refused before any flow run exists (a bad argument, a
missing source file, a refused parameter: one line naming it, never a secret); 1 a run that failed, or
``info`` that found nothing readable (one line; ``-v`` adds the traceback and Prefect's logs). A failed
run whose retry can help prints the ``prefect flow-run retry`` command that retries it, on one line.
Credentials come from the SDK's chain or a Prefect Secret block named with ``--credentials-block``
(``--source-credentials-block``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import runpy
import sys
import traceback
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

from flows.cli_input import UsageError, attributes, ints, local_file, options, parse_source, sizes, store_url
from flows.console import ENTRYPOINTS, consoles, describe, run_in_process, terminal_defaults

__all__ = ["main", "parse_source", "ENTRYPOINTS", "UsageError"]

#: A value that argparse would take for an option, such as ``-5,128``: handed to the option as ``--opt=-5,128``.
_NEGATIVE_VALUE = re.compile(r"-\d[\d,x.]*")


class _Parser(argparse.ArgumentParser):
    """argparse with its errors raised as one-line :class:`UsageError` s instead of the usage and ``exit(2)``."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


def _json_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise argparse.ArgumentTypeError(f"expected a JSON value (0, 1.5, '\"NaN\"'), got {text!r}") from None


def _layout(args: argparse.Namespace) -> dict[str, Any]:
    fields = {
        "chunks": ints(args.chunks, "--chunks"), "shards": ints(args.shards, "--shards"), "dtype": args.dtype,
        "zarr_format": args.zarr_format,
        "compression": args.compression, "fill_value": args.fill_value,
        "overwrite": args.overwrite or None,
        "dimension_names": args.dimension_names.split(",") if args.dimension_names else None,
        "attributes": attributes(args.attributes),
    }  # fmt: skip
    return {k: v for k, v in fields.items() if v is not None}


def _execution(args: argparse.Namespace) -> dict[str, Any]:
    fields = {
        "max_workers": args.workers, "chunk_concurrency": args.chunk_concurrency, "task_runner": args.task_runner,
        "retries": args.retries,
        "batch_bytes": int(args.batch_mb * 1024 * 1024) if args.batch_mb else None,
        "max_chunks_per_batch": args.max_chunks_per_batch, "refresh": getattr(args, "refresh", False) or None,
        "dask_address": args.dask_address,
    }  # fmt: skip
    if args.dask_address:
        fields["task_runner"] = "dask"
    return {k: v for k, v in fields.items() if v is not None}


def _append_params(args: argparse.Namespace) -> dict[str, Any]:
    layout: dict[str, Any] = {"chunks": sizes(args.chunks, "--chunks"), "shards": sizes(args.shards, "--shards"),
                              "zarr_format": args.zarr_format,
                              "variables": args.variables.split(",") if args.variables else None}  # fmt: skip
    if args.region:
        parts = args.region.split(",")
        if len(parts) != 3:
            raise UsageError(f"--region expects START,STOP,STEP, got {args.region!r}")
        layout["region"] = dict(zip(("start", "stop", "step"), parts, strict=True))
    source = store_url(args.source, "source")
    if "://" not in args.source and not any(c in args.source for c in "*?["):
        source = local_file(args.source, "source")
    return {"source": source, "destination": store_url(args.destination, "destination"), "dim": args.dim,
            "group": args.group,
            "layout": {k: v for k, v in layout.items() if v is not None}, "execution": _execution(args),
            "storage_options": options(args.option),
            "source_storage_options": options(args.source_option, "--source-option"),
            "wait_for_writer_seconds": args.wait_for_writer, "credentials_block": args.credentials_block,
            "source_credentials_block": args.source_credentials_block,
            "on_changed": "rewrite" if getattr(args, "rewrite_changed", False) else "error"}  # fmt: skip


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="zarrflow", description="Land N-dimensional data in Zarr arrays with Prefect.")
    p.add_argument("-v", "--verbose", action="store_true", help="show tracebacks and Prefect's run logs")
    sub = p.add_subparsers(dest="command", required=True)

    def verbose_arg(sp: argparse.ArgumentParser) -> None:  # also accepted after the command
        sp.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)

    def layout_args(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--array", default="data", help="path of the target array in the store (default: data)")
        sp.add_argument("--chunks", help="chunk shape, e.g. 256,256 (with --shards: the chunks inside a shard)")
        sp.add_argument("--shards", help="shard shape (Zarr v3), a multiple of --chunks, e.g. 2048,2048")
        sp.add_argument("--dtype", help="stored data type (default: the source's)")
        sp.add_argument("--zarr-format", type=int, choices=(2, 3))
        sp.add_argument("--compression", choices=("zstd", "gzip", "blosc-zstd", "blosc-lz4", "none"))
        sp.add_argument("--fill-value", type=_json_value, help='fill value (JSON: 0, 1.5, "NaN")')
        sp.add_argument("--dimension-names", metavar="Y,X", help="dimension names (default: the source's or dim_0,...)")
        sp.add_argument("--attributes", metavar="JSON", help='array attributes, a JSON object: \'{"units": "K"}\'')
        sp.add_argument("--overwrite", action="store_true", help="replace whatever is at the target")
        sp.add_argument("--option", action="append", metavar="NAME=VALUE", help="destination store option")
        credentials_arg(sp)

    def credentials_arg(sp: argparse.ArgumentParser, which: str = "") -> None:
        sp.add_argument(f"--{which}credentials-block", metavar="NAME",
                        help=f"Prefect Secret block holding the {which.rstrip('-') or 'destination'} store's "
                        "credentials (a JSON object of store options)")  # fmt: skip

    def execution_args(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--workers", type=int, help="batches processed at once (default: 4)")
        sp.add_argument("--chunk-concurrency", type=int, help="chunks in flight inside one batch (default: 8)")
        sp.add_argument("--task-runner", choices=("threads", "dask"))
        sp.add_argument("--dask-address", metavar="tcp://HOST:PORT",
                        help="run the batches on this existing Dask cluster (implies --task-runner dask)")  # fmt: skip
        sp.add_argument("--retries", type=int, help="task retries for transient errors (default: 4)")
        sp.add_argument("--batch-mb", type=float, help="uncompressed MiB per task run (default: 64)")
        sp.add_argument("--max-chunks-per-batch", type=int)
        sp.add_argument("--wait-for-writer", type=float, default=0.0, metavar="SECONDS",
                        help="wait this long while another run writes the target (default: fail at once)")  # fmt: skip

    def dataset_args(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--dim", default="time", help="the dimension files follow each other along (default: time)")
        sp.add_argument("--group", default="", help="path of the dataset's group in the store (default: the root)")
        sp.add_argument("--variables", help="variables to land, comma separated (default: all)")
        sp.add_argument("--region", metavar="START,STOP,STEP",
                        help="region mode: the whole axis, e.g. 2001-01-01,2001-12-31T23,1h")  # fmt: skip
        sp.add_argument("--source-option", action="append", metavar="NAME=VALUE", help="source store option")
        credentials_arg(sp, "source-")

    ing = sub.add_parser("ingest", help="land a source in a Zarr array (a NetCDF file: in a dataset)")
    ing.add_argument("source")
    ing.add_argument("destination")
    ing.add_argument("--key", help="array name inside an .npz source")
    ing.add_argument("--columns", help="Parquet/Arrow columns, comma separated (default: every numeric one)")
    ing.add_argument("--table-layout", choices=("matrix", "columns"), default="matrix")
    ing.add_argument("--source-path", default="", help="array path inside a Zarr source")
    ing.add_argument("--refresh", action="store_true", help="rewrite every batch, even finished ones")
    layout_args(ing)
    dataset_args(ing)
    execution_args(ing)

    ver = sub.add_parser("verify", help="check stored chunks against the completion manifest")
    ver.add_argument("destination")
    ver.add_argument("--array", default="data", help="array, group or dataset to check (default: data; '' the root)")
    ver.add_argument("--source", help="also compare with this source (same forms as for ingest)")
    ver.add_argument("--key")
    ver.add_argument("--option", action="append", metavar="NAME=VALUE")
    ver.add_argument("--files", help="for a dataset: compare each landed file matching this path or glob")
    ver.add_argument("--source-option", action="append", metavar="NAME=VALUE", help="option of the files' store")
    credentials_arg(ver)
    credentials_arg(ver, "source-")
    execution_args(ver)

    cp = sub.add_parser("copy", help="copy or rechunk a Zarr array between stores")
    cp.add_argument("source")
    cp.add_argument("destination")
    cp.add_argument("--source-path", default="")
    cp.add_argument("--source-option", action="append", metavar="NAME=VALUE")
    credentials_arg(cp, "source-")
    layout_args(cp)
    execution_args(cp)

    app = sub.add_parser("append", help="land new NetCDF4/HDF5 files or Zarr datasets in one growing dataset")
    app.add_argument("source", help="path or glob of the files or Zarr stores (local or a store URL: "
                     "s3://bucket/raw/*.nc, raw/*.zarr)")  # fmt: skip
    app.add_argument("destination")
    rewrite_help = "rewrite the region of a landed file whose content changed (default: fail, naming it)"
    app.add_argument("--rewrite-changed", action="store_true", help=rewrite_help)
    app.add_argument("--chunks", help="chunk length per dimension of a new dataset, e.g. time=24,lat=256,lon=256")
    app.add_argument("--shards", help="shard length per dimension (Zarr v3), e.g. time=240")
    app.add_argument("--zarr-format", type=int, choices=(2, 3))
    app.add_argument("--option", action="append", metavar="NAME=VALUE", help="destination store option")
    credentials_arg(app)
    dataset_args(app)
    execution_args(app)

    inf = sub.add_parser("info", help="describe an array or group")
    inf.add_argument("url")
    inf.add_argument("--path", default="")

    srv = sub.add_parser("serve", help="serve the deployments of deployments/serve.py (Ctrl-C to stop)")
    srv.add_argument("--file", default="deployments/serve.py")
    for command in (ing, ver, cp, app, inf, srv):
        verbose_arg(command)
    return p


def _joined_values(argv: Sequence[str], parser: argparse.ArgumentParser) -> list[str]:
    """``--chunks -5,128`` as ``--chunks=-5,128``: argparse would take ``-5,128`` for an option and refuse it."""
    takes_value = {o for a in _actions(parser) if a.nargs != 0 for o in a.option_strings}
    out: list[str] = []
    for arg in argv:
        if out and out[-1] in takes_value and _NEGATIVE_VALUE.fullmatch(arg):
            out[-1] = f"{out[-1]}={arg}"
        else:
            out.append(arg)
    return out


def _actions(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    found = list(parser._actions)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sp in action.choices.values():
                found += _actions(sp)
    return found


def main(argv: Sequence[str] | None = None) -> int:
    """The ``zarrflow`` command; returns its exit status (0, 1 or 2, see the module's docstring)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    verbose = bool({"-v", "--verbose"} & set(argv))
    out, err = consoles()
    try:
        parser = _parser()
        args = parser.parse_args(_joined_values(argv, parser))
        with _terminal_settings(args.verbose):
            return _command(args, out, err)
    except UsageError as exc:
        _report(err, exc, verbose, f"error: {exc}")
        return 2
    except KeyboardInterrupt:
        err.print("interrupted", markup=False)
        return 130
    except Exception as exc:  # info on a node that is not there, a serve file that fails, ...
        from flows.console import one_line

        _report(err, exc, verbose, f"error: {one_line(exc)}")
        return 1


@contextlib.contextmanager
def _terminal_settings(verbose: bool) -> Iterator[None]:
    """:func:`~flows.console.terminal_defaults` for one command, the environment restored after it (so a
    program calling :func:`main` keeps its own Prefect settings)."""
    before = dict(os.environ)
    terminal_defaults(verbose)
    try:
        yield
    finally:
        for name in set(os.environ) - set(before):
            del os.environ[name]


def _report(err: Any, exc: BaseException, verbose: bool, line: str) -> None:
    if verbose:
        err.print("".join(traceback.format_exception(exc)).rstrip(), markup=False)
    err.print(line, markup=False)


def _command(args: argparse.Namespace, out: Any, err: Any) -> int:
    if args.command == "info":
        return describe(store_url(args.url, "url"), args.path, out)
    if args.command == "serve":
        runpy.run_path(str(Path(args.file)), run_name="__main__")
        return 0
    from flows.sources.pieces import NETCDF_SUFFIXES

    run = {"out": out, "err": err, "verbose": args.verbose}
    if args.command == "append" or (args.command == "ingest" and args.source.lower().endswith(NETCDF_SUFFIXES)):
        from flows.append import append

        return _run(append, _append_params(args), **run)
    if args.command == "ingest":
        from flows.ingest import ingest

        source = parse_source(args.source, key=args.key, columns=args.columns, table_layout=args.table_layout,
                              source_path=args.source_path)  # fmt: skip
        if args.source_credentials_block:
            if source.get("kind") not in ("zarr", "netcdf"):
                raise UsageError("--source-credentials-block applies to Zarr and NetCDF sources")
            source["credentials_block"] = args.source_credentials_block
        params = {"source": source, "destination": store_url(args.destination, "destination"), "array": args.array,
                  "layout": _layout(args), "execution": _execution(args), "storage_options": options(args.option),
                  "wait_for_writer_seconds": args.wait_for_writer,
                  "credentials_block": args.credentials_block}  # fmt: skip
        return _run(ingest, params, **run)
    if args.command == "verify":
        from flows.verify import verify

        params = {"destination": store_url(args.destination, "destination"), "array": args.array,
                  "execution": _execution(args), "storage_options": options(args.option),
                  "credentials_block": args.credentials_block,
                  "files": store_url(args.files, "--files") if args.files else None,
                  "source_storage_options": options(args.source_option, "--source-option"),
                  "source_credentials_block": args.source_credentials_block}  # fmt: skip
        if args.source:
            params["source"] = parse_source(args.source, key=args.key)
        return _run(verify, params, **run)
    from flows.copy import copy_array

    params = {"source": store_url(args.source, "source"), "destination": store_url(args.destination, "destination"),
              "array": args.array, "source_path": args.source_path, "layout": _layout(args),
              "execution": _execution(args), "source_storage_options": options(args.source_option, "--source-option"),
              "storage_options": options(args.option), "wait_for_writer_seconds": args.wait_for_writer,
              "credentials_block": args.credentials_block,
              "source_credentials_block": args.source_credentials_block}  # fmt: skip
    return _run(copy_array, params, **run)


def _run(flow_fn: Any, params: dict[str, Any], *, out: Any, err: Any, verbose: bool) -> int:
    """Check the parameters (2: refused, before any flow run exists), then run the flow (0 or 1)."""
    from flows.validation import ParameterError, check_parameters

    try:
        check_parameters(flow_fn, params)
    except ParameterError as exc:
        raise UsageError(str(exc)) from None
    return 0 if run_in_process(flow_fn, params, out, err, verbose=verbose) is not None else 1


if __name__ == "__main__":
    sys.exit(main())
