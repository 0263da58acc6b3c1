"""datetime64 and timedelta64: the v3 ``numpy.datetime64`` / ``numpy.timedelta64`` data types and
their fill values (int64 counts of the unit, ``-2**63`` or ``"NaT"`` for Not-a-Time).

The v3 form is the zarr-extensions one, as zarr-python 3 writes it:
``{"name": "numpy.datetime64", "configuration": {"unit": "ns", "scale_factor": 1}}``.
"""

from __future__ import annotations

import datetime
from typing import Any

import numpy as np

from zarrcore.errors import MetadataError, UnsupportedDtypeError

__all__ = [
    "TIME_NAMES",
    "UNITS",
    "check_time_dtype",
    "decode_time_fill",
    "normalize_time_fill",
    "parse_v3_time",
    "time_dtype_to_v3",
]

#: The v3 names and the numpy kind of each (``M`` datetime64, ``m`` timedelta64).
TIME_NAMES = {"numpy.datetime64": "M", "numpy.timedelta64": "m"}
_NAME_OF_KIND = {kind: name for name, kind in TIME_NAMES.items()}
#: The units a v3 configuration may name (``"μs"`` is numpy's ``"us"``); ``"generic"`` is refused.
UNITS = ("Y", "M", "W", "D", "h", "m", "s", "ms", "us", "μs", "ns", "ps", "fs", "as")
_MAX_SCALE = 2**31 - 1
_INT64 = np.iinfo(np.int64)
#: What a fill value of each kind may be given as (besides an integer count of units or ``"NaT"``).
_SCALARS: dict[str, tuple[type, ...]] = {
    "M": (np.datetime64, datetime.date, str),
    "m": (np.timedelta64, datetime.timedelta),
}


def _valid_scale(scale: Any) -> bool:
    return not isinstance(scale, bool) and isinstance(scale, int) and 1 <= scale <= _MAX_SCALE


def parse_v3_time(value: dict[str, Any], field: str) -> np.dtype:
    """The native-endian numpy dtype of a v3 ``numpy.datetime64`` / ``numpy.timedelta64`` object."""
    name = value["name"]
    config = value.get("configuration")
    if set(value) != {"name", "configuration"} or not isinstance(config, dict):
        raise MetadataError(f"{field}: {name} needs exactly 'name' and a 'configuration' object, got {value!r}")
    if set(config) != {"unit", "scale_factor"}:
        raise MetadataError(f"{field}: {name} configuration needs exactly 'unit' and 'scale_factor', got {config!r}")
    unit, scale = config["unit"], config["scale_factor"]
    if unit == "generic":
        raise UnsupportedDtypeError(f"{field}: {name} with the 'generic' unit is not supported; it needs a unit")
    if not isinstance(unit, str) or unit not in UNITS:
        raise MetadataError(f"{field}: {name} configuration.unit {unit!r} is not one of {', '.join(UNITS)}")
    if not _valid_scale(scale):
        raise MetadataError(f"{field}: {name} configuration.scale_factor must be an integer from 1 to 2**31 - 1, "
                            f"got {scale!r}")  # fmt: skip
    return np.dtype(f"{TIME_NAMES[name]}8[{scale}{'us' if unit == 'μs' else unit}]")


def check_time_dtype(dt: np.dtype, value: Any, field: str) -> np.dtype:
    """``dt`` (a datetime64/timedelta64) if it has a unit and a scale factor a v3 configuration can hold."""
    unit, scale = np.datetime_data(dt)
    if unit == "generic":
        raise UnsupportedDtypeError(f"{field} {value!r}: datetime64/timedelta64 need a unit, e.g. 'M8[ns]'")
    if not _valid_scale(scale):
        raise UnsupportedDtypeError(f"{field} {value!r}: the scale factor must be from 1 to 2**31 - 1")
    return dt


def time_dtype_to_v3(dt: np.dtype) -> dict[str, Any]:
    """The v3 ``data_type`` object of a datetime64/timedelta64 dtype."""
    unit, scale = np.datetime_data(dt)
    return {"name": _NAME_OF_KIND[dt.kind], "configuration": {"unit": unit, "scale_factor": scale}}


def decode_time_fill(value: Any, dt: np.dtype, field: str) -> Any:
    """A fill value from its JSON: an int64 count of ``dt``'s unit, or ``"NaT"``."""
    if isinstance(value, str) and value == "NaT":
        return np.array("NaT", dtype=dt)[()]
    if isinstance(value, bool) or not isinstance(value, int):
        raise MetadataError(f"{field}: {value!r} is not an integer or 'NaT' for {dt}")
    if not _INT64.min <= value <= _INT64.max:
        raise MetadataError(f"{field}: {value} is out of the int64 range of {dt}")
    return np.array(value, dtype="i8").view(dt)[()]


def normalize_time_fill(value: Any, dt: np.dtype, field: str = "fill_value") -> Any:
    """A user-given fill value as a scalar of ``dt``: a count of its unit, ``"NaT"``, or a numpy / Python
    datetime (an ISO string too) or timedelta that ``dt`` holds exactly."""
    if isinstance(value, np.integer) and not isinstance(value, np.timedelta64):  # timedelta64 is an integer
        value = int(value)
    if (isinstance(value, int) and not isinstance(value, bool)) or (isinstance(value, str) and value == "NaT"):
        return decode_time_fill(value, dt, field)
    if not isinstance(value, _SCALARS[dt.kind]):
        raise MetadataError(f"{field} {value!r} is not a {'datetime' if dt.kind == 'M' else 'timedelta'} for {dt}")
    try:
        given = np.asarray(np.datetime64(value) if dt.kind == "M" else np.timedelta64(value))
        out = given.astype(dt)
    except (OverflowError, ValueError, TypeError) as exc:
        raise MetadataError(f"{field} {value!r} does not fit {dt}: {exc}") from None
    if np.isnat(given):
        return np.array("NaT", dtype=dt)[()]
    if out != given:
        raise MetadataError(f"{field} {value!r} is not a whole number of {dt}'s units")
    return out[()]
