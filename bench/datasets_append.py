"""Landing a year of daily NetCDF files in one Zarr dataset, side by side, each in a fresh process:

  (a) ``xr.open_mfdataset(files).to_zarr(dest)`` with dask: the one-shot path users take;
  (b) ``ds.to_zarr(dest, append_dim="time")`` for one file at a time: the scheduled path;
  (c1) our ``append`` flow, one run for the whole year (against a Prefect server started by the benchmark);
  (c2) our dataset appends one file at a time (``zarrcore.datasets``, the chunk work of a per-file run);
  (c3) our ``append`` flow, one run per file, for the first few files: the flow run's fixed cost.

Every contender writes time chunks of 24 steps over the whole grid, Zarr v3, default compression.
Wall time and the peak RSS of the process are measured (``wait4``), no warm-up.

    python -m bench.datasets_append                # the year (about 1.4 GiB of files)
    python -m bench.datasets_append --days 30      # a smaller set
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.datasets_data import YearSpec, generate_year, total_bytes

__all__ = ["main"]

ROOT = Path(__file__).resolve().parents[1]
CHUNKS = {"time": 24}


def _xarray_mfdataset(files: list[str], dest: str) -> None:
    import xarray as xr

    ds = xr.open_mfdataset(files, engine="h5netcdf", combine="by_coords", data_vars="minimal", coords="minimal",
                           compat="override", chunks={"time": CHUNKS["time"]})  # fmt: skip
    ds.to_zarr(dest, zarr_format=3, consolidated=True, mode="w")


def _xarray_loop(files: list[str], dest: str) -> None:
    import xarray as xr

    for i, f in enumerate(files):
        with xr.open_dataset(f, engine="h5netcdf") as ds:
            if i == 0:
                enc = {n: {"chunks": tuple(CHUNKS.get(d, ds.sizes[d]) for d in v.dims)}
                       for n, v in ds.data_vars.items() if "time" in v.dims}  # fmt: skip
                ds.to_zarr(dest, zarr_format=3, consolidated=True, mode="w", encoding=enc)
            else:
                ds.to_zarr(dest, append_dim="time", consolidated=True)


def _flow_one_run(files: list[str], dest: str) -> None:
    from flows.append import append

    folder = str(Path(files[0]).parent)
    state = append(source=f"{folder}/*.nc", destination=dest, layout={"chunks": CHUNKS}, return_state=True)
    assert state.is_completed(), state.message


def _library_per_file(files: list[str], dest: str) -> None:
    from flows.sources.pieces import planning_piece, writing_piece
    from zarrcore.datasets import Piece, create_dataset

    ds = None
    for f in files:
        plan = planning_piece(f, None, None, "time")
        lazy = writing_piece(f, None, sorted(plan.variables))
        piece = Piece(lazy.variables, lazy.attrs, plan.source)
        if ds is None:
            ds = create_dataset(dest, template=plan, dim="time", chunks=CHUNKS)
        ds = ds.append([piece])


def _flow_per_file(files: list[str], dest: str) -> None:
    from flows.append import append

    incoming = Path(dest).parent / "incoming"
    incoming.mkdir()
    seconds = []
    for f in files:
        os.link(f, incoming / Path(f).name)
        t0 = time.perf_counter()
        state = append(source=str(incoming / "*.nc"), destination=dest, layout={"chunks": CHUNKS}, return_state=True)
        seconds.append(time.perf_counter() - t0)
        assert state.is_completed(), state.message
    print(json.dumps({"per_run_seconds": seconds}))


CONTENDERS = {
    "xarray open_mfdataset+to_zarr (dask)": _xarray_mfdataset,
    "xarray to_zarr(append_dim) per file": _xarray_loop,
    "zarrcore append flow, one run": _flow_one_run,
    "zarrcore dataset append per file (library)": _library_per_file,
    "zarrcore append flow, one run per file": _flow_per_file,
}


def _worker(name: str, files: list[str], dest: str) -> None:
    CONTENDERS[name](files, dest)
    with open("/proc/self/status") as status:  # the worker's own peak (ru_maxrss would carry the parent's)
        peak = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    print(json.dumps({"peak_rss_mib": round(peak / 1024, 1)}))


def _run(name: str, files: list[Path], work: Path, api_url: str) -> dict[str, Any]:
    dest = work / "out" / "dataset.zarr"
    shutil.rmtree(work / "out", ignore_errors=True)
    (work / "out").mkdir(parents=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PREFECT_HOME": str(work / "prefect"),
           "PREFECT_LOGGING_LEVEL": "WARNING", "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120"}  # fmt: skip
    env["PREFECT_API_URL"] = api_url
    args = json.dumps([name, [str(f) for f in files], str(dest)])
    t0 = time.perf_counter()
    with open(work / "stdout", "w+") as stdout, open(work / "stderr", "w+") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "bench.datasets_append", "--worker", args], env=env,
                                cwd=ROOT, stdout=stdout, stderr=stderr)  # fmt: skip
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t0
        stdout.seek(0)
        stderr.seek(0)
        out, err = stdout.read(), stderr.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{name} failed (status {status}):\n{out[-2000:]}\n{err[-3000:]}")
    row: dict[str, Any] = {"contender": name, "files": len(files), "seconds": round(seconds, 2),
                           "peak_rss_mib": round(usage.ru_maxrss / 1024, 1)}  # fmt: skip
    for line in out.splitlines():
        if line.startswith("{"):
            row.update(json.loads(line))
    _check(dest, files)
    return row


def _check(dest: Path, files: list[Path]) -> None:
    import xarray as xr

    with xr.open_zarr(dest) as ds, xr.open_dataset(files[-1], engine="h5netcdf") as last:
        assert ds.sizes["time"] == len(files) * last.sizes["time"], ds.sizes
        xr.testing.assert_equal(ds.isel(time=slice(-last.sizes["time"], None)).t2m.load(), last.t2m.load())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--days", type=int, default=365)
    p.add_argument("--per-file-runs", type=int, default=5, help="files landed by separate flow runs in (c3)")
    p.add_argument("--data", default=None, help="folder for the files (kept and reused); default: a temp folder")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--json", help="save the rows here")
    args = p.parse_args(argv)
    if args.worker:
        _worker(*json.loads(args.worker))
        return 0
    data = Path(args.data or Path(tempfile.gettempdir()) / f"zarrcore-nc-{args.days}")
    files = generate_year(data, YearSpec(days=args.days))
    size = total_bytes(files)
    print(f"{len(files)} files, {size / 2**30:.2f} GiB")
    rows = []
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")  # no telemetry from the bench's server
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with tempfile.TemporaryDirectory(prefix="zarrcore-bench-ds-") as tmp, prefect_test_harness(120):
        api_url = str(PREFECT_API_URL.value())
        for name in CONTENDERS:
            subset = files[: args.per_file_runs] if name.endswith("one run per file") else files
            row = _run(name, subset, Path(tmp), api_url)
            row["mib_s"] = round(total_bytes(subset) / 2**20 / row["seconds"], 1)
            rows.append(row)
            print(json.dumps(row), flush=True)
    by = {r["contender"]: r for r in rows}
    one, mf = by["zarrcore append flow, one run"], by["xarray open_mfdataset+to_zarr (dask)"]
    lib, loop = by["zarrcore dataset append per file (library)"], by["xarray to_zarr(append_dim) per file"]
    runs = by["zarrcore append flow, one run per file"].get("per_run_seconds", [])
    print(f"(c) one run / (a): {one['mib_s'] / mf['mib_s']:.2f}x (target >= 1.0)")
    print(f"(c) per file, chunk work / (b): {lib['mib_s'] / loop['mib_s']:.2f}x (target >= 1.0)")
    if runs:
        print(f"(c) one flow run per file: {sum(runs[1:]) / max(1, len(runs) - 1):.2f} s per run after the first "
              f"({runs[0]:.2f} s the first, which registers the flow and creates the dataset)")  # fmt: skip
    print(f"peak RSS of the one-run flow process: {one['peak_rss_mib']} MiB (target <= 512)")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
