"""Pieces read from real NetCDF files with xarray, undecoded (values as stored), and the expected datasets."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import xarray as xr

from zarrcore.datasets import Piece, SourceId, Variable
from zarrcore.storage.base import Store

RAW = {"engine": "h5netcdf", "decode_cf": False, "decode_times": False, "mask_and_scale": False}


def piece_of(path: str | Path, *, url: str | None = None, content_hash: str | None = None) -> Piece:
    """What the file at ``path`` contributes: every variable encoded as stored, and its identity."""
    path = Path(path)
    with xr.open_dataset(path, **RAW) as ds:
        ds = ds.load()
    variables = {str(k): Variable(tuple(map(str, v.dims)), v.values, dict(v.attrs)) for k, v in ds.variables.items()}
    stat = path.stat()
    source = SourceId(url or path.as_uri(), stat.st_size, str(stat.st_mtime_ns), content_hash)
    return Piece(variables, dict(ds.attrs), source)


def expected(files: Sequence[str | Path], dim: str = "time") -> xr.Dataset:
    """What xarray gives for the files concatenated along ``dim`` (variables without it kept once)."""
    parts = []
    for f in files:
        with xr.open_dataset(f, engine="h5netcdf") as ds:
            parts.append(ds.load())
    return xr.concat(parts, dim, data_vars="minimal", coords="minimal", compat="override", join="exact",
                     combine_attrs="override")  # fmt: skip


def opened(store: Store | str | Path, path: str = "", **kwargs: Any) -> xr.Dataset:
    """The dataset as xarray opens it with its defaults (consolidated metadata, CF decoding)."""
    url = store.url if isinstance(store, Store) else str(store)
    target = f"{url.rstrip('/')}/{path}" if path else url
    return xr.open_zarr(target, **kwargs).load()
