"""One in-memory model of array and group metadata for both Zarr formats, and its JSON forms.

v2 lives in ``.zarray`` / ``.zgroup`` / ``.zattrs``; v3 in one ``zarr.json`` per node. Parsing
checks every field and names the one at fault; serializing is deterministic (sorted keys are not
used: field order follows the specs' examples so documents diff well against zarr-python's).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from zarrcore.errors import MetadataError
from zarrcore.metadata.dtypes import (
    decode_fill_value,
    default_fill_value,
    dtype_to_v2,
    dtype_to_v3,
    encode_fill_value,
    float_to_json,
    parse_dtype,
)

__all__ = [
    "ArrayMetadata",
    "GroupMetadata",
    "ZARRAY",
    "ZGROUP",
    "ZATTRS",
    "ZMETADATA",
    "ZARR_JSON",
    "json_dumps",
    "json_loads",
    "parse_array_v2",
    "parse_array_v3",
    "parse_group_v3",
]

ZARRAY, ZGROUP, ZATTRS, ZMETADATA, ZARR_JSON = ".zarray", ".zgroup", ".zattrs", ".zmetadata", "zarr.json"

_V3_ARRAY_KEYS = {
    "zarr_format", "node_type", "shape", "data_type", "chunk_grid", "chunk_key_encoding", "fill_value",
    "codecs", "attributes", "dimension_names", "storage_transformers",
}  # fmt: skip
_V3_GROUP_KEYS = {"zarr_format", "node_type", "attributes", "consolidated_metadata"}
_V2_ARRAY_KEYS = {"zarr_format", "shape", "chunks", "dtype", "compressor", "fill_value", "order", "filters",
                  "dimension_separator"}  # fmt: skip


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float_to_json(float(obj))
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def json_dumps(doc: Any) -> bytes:
    """Serialize metadata as zarr-python does: indented UTF-8 JSON, ``NaN`` spelled as a string."""
    return json.dumps(doc, indent=2, default=_json_default, allow_nan=False).encode()


def json_loads(data: bytes, key: str) -> Any:
    """Parse a metadata document; malformed JSON raises MetadataError naming the key."""
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, ValueError) as exc:  # malformed, or integers past Python's digit limit
        raise MetadataError(f"{key}: malformed JSON: {exc}") from None
    except RecursionError:
        raise MetadataError(f"{key}: malformed JSON: nested too deeply") from None
    if not isinstance(doc, dict):
        raise MetadataError(f"{key}: expected a JSON object, got {type(doc).__name__}")
    return doc


def _int_tuple(value: Any, field_name: str, *, positive: bool) -> tuple[int, ...]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise MetadataError(f"{field_name}: expected a list of integers, got {value!r}")
    lo = 1 if positive else 0
    if any(v < lo for v in value):
        raise MetadataError(f"{field_name}: every entry must be >= {lo}, got {list(value)}")
    if any(v > _INT64_MAX for v in value):
        raise MetadataError(f"{field_name}: every entry must be < 2**63, got {list(value)}")
    return tuple(int(v) for v in value)


_INT64_MAX = 2**63 - 1


def _must_understand(doc: dict[str, Any], known: set[str], where: str) -> dict[str, Any]:
    """Unknown v3 fields are errors unless they are objects marked ``"must_understand": false``."""
    extra = {}
    for k, v in doc.items():
        if k in known:
            continue
        if isinstance(v, dict) and v.get("must_understand") is False:
            extra[k] = v
            continue
        raise MetadataError(f"{where}: unknown field {k!r} that must be understood; this reader does not support it")
    return extra


@dataclass(frozen=True)
class ArrayMetadata:
    """Array metadata of either format.

    ``dtype`` is native-endian for v3 (the ``bytes`` codec sets the stored order) and carries the
    stored byte order for v2. ``fill_value`` is a numpy scalar, or ``None`` for a v2 ``null``.
    ``codecs`` holds the v3 codec list; ``compressor`` and ``filters`` the v2 numcodecs configs.
    ``chunks`` is the chunk grid's chunk shape as the spec has it: for a sharded array the shard shape
    (the inner chunk shape is in the ``sharding_indexed`` codec; ``Array.chunks`` gives it).
    """

    zarr_format: Literal[2, 3]
    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    dtype: np.dtype
    fill_value: Any
    order: Literal["C", "F"] = "C"
    codecs: tuple[dict[str, Any], ...] = ()
    compressor: dict[str, Any] | None = None
    filters: tuple[dict[str, Any], ...] | None = None
    separator: Literal["/", "."] = "/"
    key_encoding: Literal["default", "v2"] = "default"
    dimension_names: tuple[str | None, ...] | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if math.prod(self.chunks) * max(self.dtype.itemsize, 1) > _INT64_MAX:
            raise MetadataError(f"chunks: a chunk of {list(self.chunks)} {self.dtype} elements exceeds 2**63 bytes")
        if len(self.chunks) != len(self.shape):
            raise MetadataError(
                f"chunks: rank {len(self.chunks)} does not match shape rank {len(self.shape)} "
                f"(shape {list(self.shape)}, chunks {list(self.chunks)})"
            )
        if self.dimension_names is not None:
            if len(self.dimension_names) != len(self.shape):
                raise MetadataError(
                    f"dimension_names: {len(self.dimension_names)} names for an array of rank {len(self.shape)}"
                )
            if not all(n is None or isinstance(n, str) for n in self.dimension_names):
                raise MetadataError(f"dimension_names: expected strings or None, got {list(self.dimension_names)}")

    @property
    def fill(self) -> Any:
        """The value of missing elements (v2 ``null`` reads as zero)."""
        return default_fill_value(self.dtype) if self.fill_value is None else self.fill_value

    def replace(self, **changes: Any) -> ArrayMetadata:
        return dataclasses.replace(self, **changes)

    # -- keys -------------------------------------------------------------------------------------
    def encode_chunk_key(self, index: tuple[int, ...]) -> str:
        """The key of the stored object at ``index`` of the chunk grid (a shard when sharded),
        relative to the array's path, as the chunk key encoding says (zarr-python's name);
        ``Array.chunk_key`` is the full store key."""
        if self.key_encoding == "default":
            return "c" + "".join(f"{self.separator}{i}" for i in index) if index else "c"
        return self.separator.join(map(str, index)) if index else "0"

    def metadata_keys(self) -> tuple[str, ...]:
        return (ZARR_JSON,) if self.zarr_format == 3 else (ZARRAY, ZATTRS)

    # -- JSON -------------------------------------------------------------------------------------
    def to_documents(self) -> dict[str, dict[str, Any]]:
        """The metadata documents by key (``zarr.json``; or ``.zarray`` and, if any attributes, ``.zattrs``)."""
        if self.zarr_format == 3:
            doc: dict[str, Any] = {
                "shape": list(self.shape),
                "data_type": dtype_to_v3(self.dtype),
                "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": list(self.chunks)}},
                "chunk_key_encoding": {"name": self.key_encoding, "configuration": {"separator": self.separator}},
                "fill_value": encode_fill_value(self.fill_value, self.dtype, 3),
                "codecs": [dict(c) for c in self.codecs],
                "attributes": self.attributes,
                "zarr_format": 3,
                "node_type": "array",
                "storage_transformers": [],
            }
            if self.dimension_names is not None:
                doc["dimension_names"] = list(self.dimension_names)
            doc.update(self.extra)
            return {ZARR_JSON: doc}
        zarray: dict[str, Any] = {
            "shape": list(self.shape),
            "chunks": list(self.chunks),
            "dtype": dtype_to_v2(self.dtype),
            "fill_value": encode_fill_value(self.fill_value, self.dtype, 2),
            "order": self.order,
            "filters": [dict(f) for f in self.filters] if self.filters else None,
            "dimension_separator": self.separator,
            "compressor": dict(self.compressor) if self.compressor else None,
            "zarr_format": 2,
        }
        docs = {ZARRAY: zarray}
        if self.attributes:
            docs[ZATTRS] = self.attributes
        return docs

    def fingerprint(self) -> str:
        """SHA-256 of everything that decides the chunk bytes (attributes excluded)."""
        doc = self.replace(attributes={}).to_documents()
        return hashlib.sha256(json_dumps(doc)).hexdigest()


@dataclass(frozen=True)
class GroupMetadata:
    """Group metadata; ``consolidated`` maps child paths to their metadata documents, when present."""

    zarr_format: Literal[2, 3]
    attributes: dict[str, Any] = field(default_factory=dict)
    consolidated: dict[str, dict[str, Any]] | None = None

    def to_documents(self) -> dict[str, dict[str, Any]]:
        if self.zarr_format == 3:
            doc: dict[str, Any] = {"attributes": self.attributes, "zarr_format": 3, "node_type": "group"}
            if self.consolidated is not None:
                doc["consolidated_metadata"] = {
                    "kind": "inline",
                    "must_understand": False,
                    "metadata": self.consolidated,
                }
            return {ZARR_JSON: doc}
        docs: dict[str, dict[str, Any]] = {ZGROUP: {"zarr_format": 2}}
        if self.attributes:
            docs[ZATTRS] = self.attributes
        return docs


# -- parsing -------------------------------------------------------------------------------------


def _configuration(obj: dict[str, Any], where: str) -> dict[str, Any]:
    config = obj.get("configuration") or {}
    if not isinstance(config, dict):
        raise MetadataError(f"{where}.configuration must be an object, got {config!r}")
    return config


def _array_metadata(where: str, **fields: Any) -> ArrayMetadata:
    """Build ArrayMetadata; its cross-field checks (ranks, names) are reported against ``where``."""
    try:
        return ArrayMetadata(**fields)
    except MetadataError as exc:
        raise MetadataError(f"{where}: {exc}") from None


def parse_array_v3(doc: dict[str, Any], where: str = ZARR_JSON) -> ArrayMetadata:
    """Validate a v3 array ``zarr.json``."""
    if doc.get("zarr_format") != 3:
        raise MetadataError(f"{where}: zarr_format must be 3, got {doc.get('zarr_format')!r}")
    if doc.get("node_type") != "array":
        raise MetadataError(f"{where}: node_type must be 'array', got {doc.get('node_type')!r}")
    extra = _must_understand(doc, _V3_ARRAY_KEYS, where)
    for required in ("shape", "data_type", "chunk_grid", "chunk_key_encoding", "fill_value", "codecs"):
        if required not in doc:
            raise MetadataError(f"{where}: missing required field {required!r}")
    shape = _int_tuple(doc["shape"], f"{where}: shape", positive=False)
    if not isinstance(doc["data_type"], str | dict):
        raise MetadataError(f"{where}: data_type must be a name or an object, got {doc['data_type']!r}")
    dtype = parse_dtype(doc["data_type"], 3, f"{where}: data_type")
    grid = doc["chunk_grid"]
    if not isinstance(grid, dict) or grid.get("name") != "regular":
        raise MetadataError(f"{where}: chunk_grid: only the 'regular' grid is supported, got {grid!r}")
    grid_config = _configuration(grid, f"{where}: chunk_grid")
    chunks = _int_tuple(grid_config.get("chunk_shape"), f"{where}: chunk_grid.chunk_shape", positive=True)
    cke = doc["chunk_key_encoding"]
    if not isinstance(cke, dict) or cke.get("name") not in ("default", "v2"):
        raise MetadataError(f"{where}: chunk_key_encoding: expected 'default' or 'v2', got {cke!r}")
    sep = _configuration(cke, f"{where}: chunk_key_encoding").get("separator", "/" if cke["name"] == "default" else ".")
    if sep not in ("/", "."):
        raise MetadataError(f"{where}: chunk_key_encoding.separator must be '/' or '.', got {sep!r}")
    st = doc.get("storage_transformers", [])
    if st:
        raise MetadataError(f"{where}: storage_transformers {st!r} are not supported")
    codecs = doc["codecs"]
    if not isinstance(codecs, list) or not all(isinstance(c, dict | str) for c in codecs):
        raise MetadataError(f"{where}: codecs must be a list of codec objects, got {codecs!r}")
    codecs = [{"name": c} if isinstance(c, str) else c for c in codecs]
    names = doc.get("dimension_names")
    if names is not None and (
        not isinstance(names, list) or not all(n is None or isinstance(n, str) for n in names)
    ):
        raise MetadataError(f"{where}: dimension_names must be a list of strings or nulls, got {names!r}")
    attrs = doc.get("attributes", {})
    if not isinstance(attrs, dict):
        raise MetadataError(f"{where}: attributes must be an object")
    return _array_metadata(
        where,
        zarr_format=3,
        shape=shape,
        chunks=chunks,
        dtype=dtype,
        fill_value=decode_fill_value(doc["fill_value"], dtype, 3, f"{where}: fill_value"),
        codecs=tuple(codecs),
        separator=sep,
        key_encoding=cke["name"],
        dimension_names=tuple(names) if names is not None else None,
        attributes=attrs,
        extra=extra,
    )


def parse_array_v2(zarray: dict[str, Any], attrs: dict[str, Any] | None = None, where: str = ZARRAY) -> ArrayMetadata:
    """Validate a v2 ``.zarray`` (and its ``.zattrs``)."""
    if zarray.get("zarr_format") != 2:
        raise MetadataError(f"{where}: zarr_format must be 2, got {zarray.get('zarr_format')!r}")
    for required in ("shape", "chunks", "dtype", "compressor", "fill_value", "order", "filters"):
        if required not in zarray:
            raise MetadataError(f"{where}: missing required field {required!r}")
    unknown = set(zarray) - _V2_ARRAY_KEYS
    if unknown:  # the v2 spec: other keys SHOULD be ignored (some writers add "node_type")
        warnings.warn(f"{where}: ignoring unknown fields {sorted(unknown)}", stacklevel=2)
    shape = _int_tuple(zarray["shape"], f"{where}: shape", positive=False)
    chunks = _int_tuple(zarray["chunks"], f"{where}: chunks", positive=True)
    dtype = parse_dtype(zarray["dtype"], 2, f"{where}: dtype")
    order = zarray["order"]
    if order not in ("C", "F"):
        raise MetadataError(f"{where}: order must be 'C' or 'F', got {order!r}")
    sep = zarray.get("dimension_separator", ".")
    if sep not in ("/", "."):
        raise MetadataError(f"{where}: dimension_separator must be '.' or '/', got {sep!r}")
    compressor = zarray["compressor"]
    if compressor is not None and not (isinstance(compressor, dict) and isinstance(compressor.get("id"), str)):
        raise MetadataError(f"{where}: compressor must be null or a numcodecs config with an 'id', got {compressor!r}")
    filters = zarray["filters"]
    if filters is not None and not (
        isinstance(filters, list) and all(isinstance(f, dict) and isinstance(f.get("id"), str) for f in filters)
    ):
        raise MetadataError(f"{where}: filters must be null or a list of numcodecs configs, got {filters!r}")
    if attrs is not None and not isinstance(attrs, dict):
        raise MetadataError(f"{ZATTRS}: attributes must be a JSON object")
    return _array_metadata(
        where,
        zarr_format=2,
        shape=shape,
        chunks=chunks,
        dtype=dtype,
        fill_value=decode_fill_value(zarray["fill_value"], dtype, 2, f"{where}: fill_value"),
        order=order,
        compressor=compressor,
        filters=tuple(filters) if filters else None,
        separator=sep,
        key_encoding="v2",
        attributes=attrs or {},
    )


def parse_group_v3(doc: dict[str, Any], where: str = ZARR_JSON) -> GroupMetadata:
    """Validate a v3 group ``zarr.json`` (inline consolidated metadata included)."""
    if doc.get("zarr_format") != 3 or doc.get("node_type") != "group":
        raise MetadataError(f"{where}: not a v3 group document")
    known = set(_V3_GROUP_KEYS)
    _must_understand(doc, known, where)
    attrs = doc.get("attributes", {})
    if not isinstance(attrs, dict):
        raise MetadataError(f"{where}: attributes must be an object")
    consolidated = None
    cm = doc.get("consolidated_metadata")
    if isinstance(cm, dict) and cm.get("kind") == "inline" and isinstance(cm.get("metadata"), dict):
        consolidated = cm["metadata"]
    return GroupMetadata(zarr_format=3, attributes=attrs, consolidated=consolidated)
