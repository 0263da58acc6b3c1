"""Coordinate values as users write them: a region axis from dates and durations, and values shown as
dates. Times are CF-encoded numbers (``hours since 2000-01-01`` in a calendar); xarray encodes and
decodes them exactly as it does for the files."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from flows.params import RegionAxis
from zarrcore.datasets import Variable

__all__ = ["axis_values", "describe_value"]


def _time_units(attrs: Mapping[str, Any]) -> tuple[str, str] | None:
    units = str(attrs.get("units", ""))
    return (units, str(attrs.get("calendar", "standard"))) if " since " in units else None


def axis_values(axis: RegionAxis, coord: Variable) -> np.ndarray:
    """Every value of ``axis``, encoded as the coordinate ``coord`` is (its units, calendar and dtype)."""
    cf = _time_units(coord.attrs)
    if cf is not None and isinstance(axis.start, str):
        import pandas as pd
        from xarray.coding.times import encode_cf_datetime

        dates = pd.date_range(axis.start, axis.stop, freq=str(axis.step).replace("H", "h"))
        values, _, _ = encode_cf_datetime(dates.values, cf[0], cf[1], dtype=coord.dtype)
        return np.asarray(values, dtype=coord.dtype)
    start, stop, step = (float(v) for v in (axis.start, axis.stop, axis.step))
    if step <= 0 or stop < start:
        raise ValueError(f"region axis: step must be positive and stop >= start, got {axis}")
    return (start + step * np.arange(round((stop - start) / step) + 1)).astype(coord.dtype)


def describe_value(attrs: Mapping[str, Any], value: Any) -> str:
    """``value`` of a coordinate with these attributes as text: a date for CF times, else the number."""
    cf = _time_units(attrs)
    if cf is None:
        return str(np.asarray(value).item())
    from xarray.coding.times import decode_cf_datetime

    decoded = decode_cf_datetime(np.asarray([value]), cf[0], cf[1])[0]
    return str(np.datetime_as_string(decoded, unit="s")) if isinstance(decoded, np.datetime64) else str(decoded)
