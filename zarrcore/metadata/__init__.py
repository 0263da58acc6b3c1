"""Array and group metadata for Zarr v2 and v3."""

from zarrcore.metadata.dtypes import V3_DTYPES, parse_dtype
from zarrcore.metadata.model import (
    ZARR_JSON,
    ZARRAY,
    ZATTRS,
    ZGROUP,
    ZMETADATA,
    ArrayMetadata,
    GroupMetadata,
    json_dumps,
    json_loads,
    parse_array_v2,
    parse_array_v3,
    parse_group_v3,
)

__all__ = [
    "V3_DTYPES",
    "ZARR_JSON",
    "ZARRAY",
    "ZATTRS",
    "ZGROUP",
    "ZMETADATA",
    "ArrayMetadata",
    "GroupMetadata",
    "json_dumps",
    "json_loads",
    "parse_array_v2",
    "parse_array_v3",
    "parse_group_v3",
    "parse_dtype",
]
