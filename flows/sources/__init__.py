"""Where ingest reads from: ``.npy``/``.npz`` files, Parquet/Arrow tables, Zarr arrays on any store,
a variable of a NetCDF4/HDF5 file on any store,
and a deterministic synthetic generator; one module per kind.

A source is chosen by a parameter model (a pydantic discriminated union on ``kind``: :data:`SourceSpec`);
flows declare :data:`SourceParam`, which the UI shows as one flat form (:class:`SourceForm`).
Opening it gives a :class:`SourceReader`: shape and dtype, ``read(region)`` for any rectangular region,
``fingerprint(region)``, which changes exactly when the data in that region changes, and ``forget()``.
Every region is readable on its own, so chunk batches run anywhere and in any order.
"""

from __future__ import annotations

from flows.sources.base import Region, SourceError, SourceModel, SourceReader, region_key
from flows.sources.form import SourceForm, SourceParam, SourceSpec
from flows.sources.netcdf import NetcdfArraySource
from flows.sources.npy import NpySource
from flows.sources.npz import NpzSource
from flows.sources.parquet import ParquetSource
from flows.sources.synthetic import SyntheticSource
from flows.sources.zarr import ZarrSource

__all__ = [
    "Region",
    "SourceReader",
    "SourceModel",
    "NpySource",
    "NpzSource",
    "ParquetSource",
    "ZarrSource",
    "SyntheticSource",
    "NetcdfArraySource",
    "SourceSpec",
    "SourceParam",
    "SourceForm",
    "SourceError",
    "region_key",
]
