"""Data types and fill values: numpy dtypes to and from their v2/v3 JSON names and encodings."""

from __future__ import annotations

import base64
import binascii
import math
from typing import Any

import numpy as np

from zarrcore.errors import MetadataError, UnsupportedDtypeError
from zarrcore.metadata.time_dtypes import (
    TIME_NAMES,
    check_time_dtype,
    decode_time_fill,
    normalize_time_fill,
    parse_v3_time,
    time_dtype_to_v3,
)

__all__ = [
    "STRING",
    "V3_DTYPES",
    "parse_dtype",
    "dtype_to_v2",
    "dtype_to_v3",
    "default_fill_value",
    "decode_fill_value",
    "encode_fill_value",
    "fill_blocks",
    "is_fill",
    "needs_endian",
    "normalize_fill_value",
]

#: The v3 core data types and their numpy equivalents (native byte order).
V3_DTYPES: dict[str, np.dtype] = {
    name: np.dtype(name)
    for name in (
        "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
        "float16", "float32", "float64", "complex64", "complex128",
    )
}  # fmt: skip
_V3_NAMES = {dt: name for name, dt in V3_DTYPES.items()}
_V2_KINDS = set("biufcMmUSO")
#: Variable-length UTF-8 strings: numpy object arrays of ``str`` (v3 ``string``, v2 ``|O`` + ``vlen-utf8``).
STRING = np.dtype(object)
#: The v3 data types with a length, named as zarr-python names them: numpy ``U<n>`` (UTF-32 code
#: points, 4 bytes each) and ``S<n>`` (bytes; shorter values padded with NUL bytes).
_V3_STRINGS = {"fixed_length_utf32": "U", "null_terminated_bytes": "S"}
#: Every v3 data type name zarrcore reads, for error messages.
_V3_SUPPORTED = ", ".join([*V3_DTYPES, "string", *_V3_STRINGS, *TIME_NAMES])


def needs_endian(dt: np.dtype) -> bool:
    """Whether the stored bytes depend on byte order (the v3 ``bytes`` codec then needs ``endian``)."""
    return dt.kind == "U" or (dt.kind != "S" and dt.itemsize > 1)


def _v3_object(value: dict[str, Any], field: str) -> np.dtype:
    """A v3 ``data_type`` object: a fixed-length string or a datetime64/timedelta64."""
    name, config = value.get("name"), value.get("configuration") or {}
    if isinstance(name, str) and name in TIME_NAMES:
        return parse_v3_time(value, field)
    length = config.get("length_bytes") if isinstance(config, dict) else None
    if not isinstance(name, str) or name not in _V3_STRINGS:
        raise UnsupportedDtypeError(f"{field} {value!r} is not supported; supported: {_V3_SUPPORTED}")
    kind = _V3_STRINGS[name]
    unit = 4 if kind == "U" else 1
    if isinstance(length, bool) or not isinstance(length, int) or not unit <= length < 2**31 or length % unit:
        raise MetadataError(
            f"{field}: {name} needs configuration.length_bytes, a positive multiple of {unit} below 2**31"
        )
    return np.dtype(f"{kind}{length // unit}")


def parse_dtype(value: Any, zarr_format: int, field: str = "dtype") -> np.dtype:
    """A numpy dtype from user input or metadata JSON. v3 dtypes are native-endian; v2 keep their order.

    ``field`` names the input in error messages (``"zarr.json: data_type"``).
    """
    if zarr_format == 3 and isinstance(value, str) and value in V3_DTYPES:
        return V3_DTYPES[value]
    if value is str or (isinstance(value, str) and value in ("string", "str")):
        return STRING
    if zarr_format == 3 and isinstance(value, dict):
        return _v3_object(value, field)
    try:
        dt = np.dtype(value)
    except (TypeError, ValueError) as exc:
        raise UnsupportedDtypeError(f"{field} {value!r} is not a known data type: {exc}") from None
    if dt.fields is not None or dt.subdtype is not None:
        raise UnsupportedDtypeError(f"{field} {value!r}: structured and sub-array dtypes are not supported")
    if dt.kind in "US" and dt.itemsize == 0:
        raise UnsupportedDtypeError(
            f"{field} {value!r}: strings need a length, e.g. 'U8' or 'S8' (or dtype=str for variable-length strings)"
        )
    if dt.kind == "O":
        return STRING
    if dt.kind in "Mm":
        check_time_dtype(dt, value, field)
    if zarr_format == 3:
        native = dt.newbyteorder("=")
        if dt.kind in "USMm":
            return native
        if native not in _V3_NAMES:
            raise UnsupportedDtypeError(f"{field} {value!r} is not supported in Zarr v3; supported: {_V3_SUPPORTED}")
        return V3_DTYPES[_V3_NAMES[native]]
    if dt.kind not in _V2_KINDS:
        raise UnsupportedDtypeError(
            f"{field} {value!r} (kind {dt.kind!r}) is not supported; use bool, int, uint, float, complex, "
            "datetime64, timedelta64 or fixed-length strings (U<n>, S<n>)"
        )
    if dt.byteorder == "=":
        dt = dt.newbyteorder("<")
    return dt


def dtype_to_v3(dt: np.dtype) -> str | dict[str, Any]:
    """The v3 ``data_type``: a name, or an object (fixed-length strings with their length in bytes,
    datetime64/timedelta64 with their unit and scale factor)."""
    if dt.kind in "Mm":
        return time_dtype_to_v3(dt)
    if dt.kind in "US":
        name = "fixed_length_utf32" if dt.kind == "U" else "null_terminated_bytes"
        return {"name": name, "configuration": {"length_bytes": dt.itemsize}}
    if dt.kind == "O":
        return "string"
    return _V3_NAMES[dt.newbyteorder("=")]


def dtype_to_v2(dt: np.dtype) -> str:
    """The v2 ``dtype`` string (``'<f4'``, ``'|b1'``, ``'<M8[ns]'``)."""
    return dt.str


def default_fill_value(dt: np.dtype) -> Any:
    """The value of missing elements when none is set: zero (``False`` for bool), but ``NaT`` for
    datetime64/timedelta64, as zarr-python reads a v2 ``null`` fill value."""
    if dt.kind in "Mm":
        return np.array("NaT", dtype=dt)[()]  # keeps the scale factor ('M8[10s]')
    if dt.kind == "O":
        return ""
    return np.zeros((), dtype=dt)[()]  # '' and b'' for strings


def float_to_json(x: float) -> Any:
    """A float as metadata JSON: a number, or ``\"NaN\"`` / ``\"Infinity\"`` / ``\"-Infinity\"``."""
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    return x


def _float_from_json(v: Any, dt: np.dtype, field: str) -> Any:
    if isinstance(v, str):
        special = {"NaN": np.nan, "Infinity": np.inf, "-Infinity": -np.inf}
        if v in special:
            return dt.type(special[v])
        if v.startswith("0x"):
            if len(v) != 2 + 2 * dt.itemsize:  # a shorter pattern is ambiguous: readers pad it differently
                raise MetadataError(f"{field}: hex fill value {v!r} must have {2 * dt.itemsize} hex digits for {dt}")
            try:
                raw = int(v, 16).to_bytes(dt.itemsize, "big")
            except (ValueError, OverflowError):
                raise MetadataError(f"{field}: hex fill value {v!r} does not fit {dt}") from None
            return np.frombuffer(raw, dtype=dt.newbyteorder(">"))[0].astype(dt)
        raise MetadataError(f"{field}: {v!r} is not a number, 'NaN', 'Infinity', '-Infinity' or a hex bit pattern")
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise MetadataError(f"{field}: {v!r} is not a valid fill value for {dt}")
    with np.errstate(over="ignore"):
        out = dt.type(v)
    if not np.isfinite(out):
        raise MetadataError(f"{field}: {v!r} is out of range for {dt}")
    return out


def decode_fill_value(value: Any, dt: np.dtype, zarr_format: int, field: str = "fill_value") -> Any:
    """A numpy scalar from the metadata JSON; v2 ``null`` gives ``None``."""
    if value is None:
        if zarr_format == 2:
            return None
        raise MetadataError(f"{field}: null is not allowed in Zarr v3")
    kind = dt.kind
    try:
        if kind == "b":
            if not isinstance(value, bool | int):
                raise MetadataError(f"{field}: {value!r} is not a boolean")
            return np.bool_(value)
        if kind in "iu":
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            if isinstance(value, bool) or not isinstance(value, int):
                raise MetadataError(f"{field}: {value!r} is not an integer for {dt}")
            info = np.iinfo(dt)
            if not info.min <= value <= info.max:
                raise MetadataError(f"{field}: {value} is out of range for {dt}")
            return dt.type(value)
        if kind == "f":
            return _float_from_json(value, dt, field)
        if kind == "c":
            if not isinstance(value, list | tuple) or len(value) != 2:
                raise MetadataError(f"{field}: complex fill values are [real, imag], got {value!r}")
            part = np.dtype(f"f{dt.itemsize // 2}")
            re, im = (_float_from_json(v, part, field) for v in value)
            return dt.type(complex(float(re), float(im)))
        if kind == "O":
            if zarr_format == 2 and isinstance(value, int | float) and not isinstance(value, bool):
                value = str(value)  # zarr-python 2 wrote fill_value 0 for strings; zarr-python 3 reads '0'
            if not isinstance(value, str):
                raise MetadataError(f"{field}: {value!r} is not a string")
            return value
        if kind == "U":
            if not isinstance(value, str) or len(value) > dt.itemsize // 4:
                raise MetadataError(f"{field}: {value!r} is not a string of at most {dt.itemsize // 4} characters")
            return np.array(value, dtype=dt)[()]
        if kind == "S":
            try:
                raw = base64.b64decode(value, validate=True) if isinstance(value, str) else None
            except binascii.Error:
                raw = None
            if raw is None or len(raw) > dt.itemsize:
                raise MetadataError(f"{field}: {value!r} is not base64 of at most {dt.itemsize} bytes")
            return np.array(raw, dtype=dt)[()]
        if kind in "Mm":
            return decode_time_fill(value, dt, field)
    except (OverflowError, ValueError) as exc:
        if isinstance(exc, MetadataError):
            raise
        raise MetadataError(f"{field}: {value!r} is not valid for {dt}: {exc}") from None
    raise UnsupportedDtypeError(f"{field}: no fill value encoding for {dt}")


def encode_fill_value(value: Any, dt: np.dtype, zarr_format: int) -> Any:
    """The JSON form of a fill value (numbers, ``"NaN"``/``"Infinity"``, ``[re, im]``, int64 counts for
    datetimes and timedeltas, ``NaT`` as ``-2**63`` as zarr-python writes it)."""
    if value is None:
        return None
    kind = dt.kind
    if kind == "b":
        return bool(value)
    if kind in "iu":
        return int(value)
    if kind == "f":
        return float_to_json(float(value))
    if kind == "c":
        c = complex(value)
        return [float_to_json(c.real), float_to_json(c.imag)]
    if kind in "Mm":
        return int(np.array(value, dtype=dt).view("i8"))
    if kind in "UO":
        return str(value)
    if kind == "S":
        return base64.b64encode(bytes(value)).decode("ascii")
    raise UnsupportedDtypeError(f"no fill value encoding for {dt}")


def normalize_fill_value(value: Any, dt: np.dtype, zarr_format: int) -> Any:
    """Coerce a user-given fill value to a scalar of ``dt`` (``None`` means the default)."""
    if value is None:  # v2 variable-length strings default to '', as zarr-python writes them
        return None if zarr_format == 2 and dt.kind != "O" else default_fill_value(dt)
    if dt.kind in "Mm":
        return normalize_time_fill(value, dt)
    if dt.kind in "USO" and not isinstance(value, str | bytes | np.str_ | np.bytes_):
        raise MetadataError(f"fill_value {value!r} is not a string for {'str' if dt.kind == 'O' else dt}")
    if dt.kind == "O":
        if not isinstance(value, str | np.str_):
            raise MetadataError(f"fill_value {value!r} is not a string for str")
        return str(value)
    if isinstance(value, np.generic | int | float | complex | bool):
        arr = np.asarray(value)
        try:
            with np.errstate(all="ignore"):
                out = arr.astype(dt)
        except (OverflowError, ValueError, TypeError) as exc:
            raise MetadataError(f"fill_value {value!r} does not fit {dt}: {exc}") from None
        if dt.kind in "iu" and ((arr.dtype.kind in "fc" and not np.isfinite(arr)) or out != arr):
            raise MetadataError(f"fill_value {value!r} does not fit {dt}")
        if dt.kind in "fc" and arr.dtype.kind in "iufc" and np.isfinite(arr) and not np.isfinite(out):
            raise MetadataError(f"fill_value {value!r} is out of range for {dt}")
        return out[()]
    if dt.kind in "US" and isinstance(value, str | bytes | np.str_ | np.bytes_):
        try:
            out = np.array(value, dtype=dt)
        except (UnicodeEncodeError, ValueError) as exc:
            raise MetadataError(f"fill_value {value!r} does not fit {dt}: {exc}") from None
        if out[()] != value:  # numpy cuts a value that is too long
            raise MetadataError(f"fill_value {value!r} is longer than {dt} holds")
        return out[()]
    if isinstance(value, str | list):
        return decode_fill_value(value, dt, zarr_format)
    raise MetadataError(f"fill_value {value!r} is not a scalar for {dt}")


#: Arrays of at least this many elements are probed at both ends before a full scan.
_PROBE_SIZE = 1 << 14


def is_fill(chunk: np.ndarray, fill: Any) -> bool:
    """Whether every element equals ``fill`` (NaN matches NaN). A large array whose first or last
    element differs is decided at once, without a scan (real data rarely starts with the fill)."""
    if fill is None:
        fill = default_fill_value(chunk.dtype)
    if chunk.size >= _PROBE_SIZE and chunk.ndim:
        ends = (slice(0, 1),) * chunk.ndim, (slice(-1, None),) * chunk.ndim
        if not all(_all_fill(chunk[end], fill) for end in ends):
            return False
    return _all_fill(chunk, fill)


def fill_blocks(blocks: np.ndarray, fill: Any) -> list[bool]:
    """:func:`is_fill` of each ``blocks[i]`` (a C-contiguous array of equal blocks along its first axis,
    such as a shard's inner chunks), the first and last element of every block probed in one step."""
    if fill is None:
        fill = default_fill_value(blocks.dtype)
    flat = blocks.reshape(len(blocks), math.prod(blocks.shape[1:]))
    if not flat.size:
        return [True] * len(blocks)
    ends = flat[:, [0, -1]]
    probe = np.asarray(_fill_mask(ends, fill))
    if probe.shape != ends.shape:  # a comparison numpy does not make element by element
        return [is_fill(block, fill) for block in blocks]
    return [bool(both) and _all_fill(block, fill) for both, block in zip(probe.all(axis=1), flat, strict=True)]


def _all_fill(chunk: np.ndarray, fill: Any) -> bool:
    return bool(_fill_mask(chunk, fill).all())


def _fill_mask(values: np.ndarray, fill: Any) -> Any:
    """Which elements equal ``fill``: NaN matches NaN (also in either part of a complex), and times
    compare as integers (NaT never equals NaT)."""
    kind = values.dtype.kind
    if kind in "Mm":
        return values.view("i8") == np.array(fill, dtype=values.dtype).view("i8")
    if kind == "f" and np.isnan(fill):
        return np.isnan(values)
    if kind == "c":
        f = complex(fill)
        if math.isnan(f.real) or math.isnan(f.imag):
            return _part_mask(values.real, f.real) & _part_mask(values.imag, f.imag)
    return values == fill


def _part_mask(part: np.ndarray, value: float) -> np.ndarray:
    return np.isnan(part) if math.isnan(value) else part == value
