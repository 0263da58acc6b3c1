"""The dataset benchmark's input: a year of daily NetCDF4 files (24 hourly steps each, >= 1 GiB in all),
written by xarray (h5netcdf) with the test suite's generator, so the benchmark lands the same kind of
files the tests check. Deterministic: the same arguments give the same bytes; a folder already holding
the files of these arguments (its ``manifest.json``) is reused.

    python -m bench.datasets_data /tmp/nc-year                 # 365 files of 120 x 240, about 1.4 GiB
    python -m bench.datasets_data /tmp/nc-year --days 10       # a smaller set
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from bench._common import MiB, cores
from tests.fixtures.netcdf_files import write_netcdf

__all__ = ["YearSpec", "generate_year", "total_bytes"]

GiB = 1024 * MiB


@dataclass(frozen=True)
class YearSpec:
    """What the files hold: ``days`` daily files from ``start``, ``steps`` hourly steps each, on a
    ``ny`` x ``nx`` grid, values from ``seed``. The default is one year, 6 bytes per point and step
    (float32 ``t2m`` and int16 ``precip``): 365 x 24 x 120 x 240 x 6 B, about 1.4 GiB."""

    start: str = "2001-01-01"
    days: int = 365
    steps: int = 24
    ny: int = 120
    nx: int = 240
    seed: int = 0

    def file_name(self, day: int) -> str:
        date = np.datetime64(self.start, "D") + np.timedelta64(day, "D")
        return f"era-{date}.nc"

    def data_bytes(self) -> int:
        """The bytes of the time-varying variables (the files are a little larger)."""
        return self.days * self.steps * self.ny * self.nx * 6


def _write(folder: str, spec: YearSpec, day: int) -> int:
    first = np.datetime64(spec.start, "h") + np.timedelta64(day * 24, "h")
    path = write_netcdf(Path(folder) / spec.file_name(day), first, spec.steps, ny=spec.ny, nx=spec.nx, seed=spec.seed)
    return path.stat().st_size


def total_bytes(files: list[Path]) -> int:
    return sum(p.stat().st_size for p in files)


def generate_year(folder: str | Path, spec: YearSpec | None = None, *, workers: int | None = None) -> list[Path]:
    """Write the files of ``spec`` (default: one year) into ``folder``, in parallel processes, and return
    their paths in time order. A folder whose manifest names the same spec and whose files all have
    the recorded sizes is returned as it is."""
    spec = spec or YearSpec()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / spec.file_name(day) for day in range(spec.days)]
    manifest = folder / "manifest.json"
    if manifest.exists():
        recorded = json.loads(manifest.read_text())
        if recorded.get("spec") == asdict(spec) and all(
            p.exists() and p.stat().st_size == size for p, size in zip(paths, recorded["sizes"], strict=True)
        ):
            return paths
    manifest.unlink(missing_ok=True)
    workers = workers or cores()
    if workers == 1:
        sizes = [_write(str(folder), spec, day) for day in range(spec.days)]
    else:
        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            sizes = list(pool.map(_write, [str(folder)] * spec.days, [spec] * spec.days, range(spec.days)))
    manifest.write_text(json.dumps({"spec": asdict(spec), "sizes": sizes}, indent=1))
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder")
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("--grid", default="120x240", help="ny x nx, e.g. 120x240")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args(argv)
    ny, nx = (int(n) for n in args.grid.lower().split("x"))
    spec = YearSpec(days=args.days, steps=args.steps, ny=ny, nx=nx, seed=args.seed)
    files = generate_year(args.folder, spec, workers=args.workers)
    size = total_bytes(files)
    print(f"{len(files)} files, {size / GiB:.2f} GiB in {args.folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
