"""A reader process for the kill tests: opens the dataset with xarray's defaults over and over and
checks each state it sees against the files, until a stop file appears (or a deadline passes). On an
emulator it reads through zarr-python's own store (one, opened once), as a long-lived reader would.

Usage: python poll_reader.py TARGET_JSON LOG STOP STEPS_PER_FILE FILE... ; one JSON line per read in LOG."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import xarray as xr

from tests.datasets.kill_targets import Target, opened
from tests.datasets.pieces import expected
from tests.fixtures.zarr_python_stores import ZarrPythonStores

DEADLINE_SECONDS = 600


def check(readable: Any, full: xr.Dataset, steps: int) -> dict:
    """One read of ``readable`` (:meth:`Target.readable`): the length seen along time and whether the
    state is one the files make."""
    try:
        ds = opened(readable)
    except FileNotFoundError:  # zarr's GroupNotFoundError too
        return {"n": None, "ok": True, "note": "not created yet"}
    except Exception as exc:  # an inconsistent state: xarray refuses it
        return {"n": None, "ok": False, "error": f"{type(exc).__name__}: {exc}"}
    n = ds.sizes.get("time", 0)
    if n % steps:
        return {"n": n, "ok": False, "error": f"{n} steps is not a whole number of files"}
    try:
        xr.testing.assert_identical(ds, full.isel(time=slice(0, n)))
    except AssertionError as exc:
        return {"n": n, "ok": False, "error": str(exc)[:2000]}
    return {"n": n, "ok": True}


def main(target: str, log: str, stop: str, steps: int, files: list[str]) -> None:
    full = expected(files)
    stores = ZarrPythonStores()
    readable = Target.from_json(target).readable(stores)
    deadline = time.monotonic() + DEADLINE_SECONDS
    try:
        with open(log, "a") as out:
            while time.monotonic() < deadline:
                last = Path(stop).exists()
                out.write(json.dumps(check(readable, full, steps)) + "\n")
                out.flush()
                if last:
                    break
    finally:
        stores.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5:])
