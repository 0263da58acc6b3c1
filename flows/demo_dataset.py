"""The dataset part of ``make demo``: write six daily NetCDF files, land three with the ``append`` flow,
then the other three, and print the dataset as ``xarray.open_zarr`` opens it."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["DAYS", "write_day", "run"]

DAYS = 6
EPOCH = np.datetime64("2001-01-01T00", "h")


def write_day(folder: Path, day: int) -> Path:
    """One daily file as a model writes it: 24 hourly steps of ``t2m`` (float32) and ``precip`` (int16
    packed with scale_factor/add_offset/_FillValue), a static ``orog``, CF time, lat/lon."""
    import xarray as xr

    lat, lon = np.linspace(-88.75, 88.75, 72), np.arange(0, 360, 2.5)
    hours = day * 24 + np.arange(24)
    rng = np.random.default_rng([7, day])
    t2m = (250 + 40 * np.cos(np.deg2rad(lat))[None, :, None] + rng.standard_normal((24, lat.size, lon.size)))
    precip = np.clip(rng.gamma(0.5, 4.0, (24, lat.size, lon.size)), 0, 300)
    precip[rng.random(precip.shape) < 0.02] = np.nan
    orog = 2000 * np.abs(np.sin(np.deg2rad(3 * lat))[:, None] * np.cos(np.deg2rad(2 * lon))[None, :])
    ds = xr.Dataset(
        {"t2m": (("time", "lat", "lon"), t2m.astype("float32"), {"units": "K", "long_name": "2 metre temperature"}),
         "precip": (("time", "lat", "lon"), precip, {"units": "mm", "long_name": "total precipitation"}),
         "orog": (("lat", "lon"), orog.astype("float32"), {"units": "m"})},
        coords={"time": EPOCH + hours.astype("timedelta64[h]"), "lat": ("lat", lat, {"units": "degrees_north"}),
                "lon": ("lon", lon, {"units": "degrees_east"})},
        attrs={"title": "zarrflow demo reanalysis", "Conventions": "CF-1.8"},
    )  # fmt: skip
    path = folder / f"day-{day:02d}.nc"
    encoding = {"time": {"units": "hours since 2001-01-01", "calendar": "standard", "dtype": "int32"},
                "precip": {"dtype": "int16", "scale_factor": 0.01, "add_offset": 0.0, "_FillValue": -32767}}
    tmp = path.with_suffix(".part")
    ds.to_netcdf(tmp, engine="h5netcdf", encoding=encoding)
    shutil.move(tmp, path)  # a file appears whole, as a transfer tool would deliver it
    return path


def run(root: Path, console: Any) -> int:
    """Generate the files, land half, then the rest; print the dataset. Returns 0 or 1."""
    import xarray as xr

    from flows.append import append
    from flows.console import run_in_process

    raw, incoming, destination = root / "raw", root / "incoming", root / "dataset.zarr"
    raw.mkdir(exist_ok=True)
    incoming.mkdir(exist_ok=True)
    files = [raw / f"day-{d:02d}.nc" if (raw / f"day-{d:02d}.nc").exists() else write_day(raw, d) for d in range(DAYS)]
    console.print(f"[bold]dataset[/bold]: {DAYS} daily NetCDF files in {raw}; new ones arrive in {incoming}")
    params = {"source": str(incoming / "*.nc"), "destination": str(destination), "dim": "time",
              "layout": {"chunks": {"time": 48}}, "execution": {"max_workers": 4}}  # fmt: skip
    for batch in (files[: DAYS // 2], files[DAYS // 2 :]):
        for f in batch:
            if not (incoming / f.name).exists():
                shutil.copy(f, incoming / f.name)
        result = run_in_process(append, params, console)
        if result is None:
            return 1
        console.print(f"[bold]{len(result['landed'])} new files landed[/bold], {result['skipped']} already there; "
                      f"the dataset covers {' to '.join(result['covered'])}")  # fmt: skip
    console.print(f"xarray.open_zarr({str(destination)!r}):", markup=False)
    console.print(repr(xr.open_zarr(destination)), markup=False, highlight=False)
    return 0
