"""Stores: the protocol, the URL registry and the built-in backends (memory, local, s3, gs, az)."""

from zarrcore.storage.base import (
    ByteRange,
    OffsetRequest,
    RangeRequest,
    Store,
    SuffixRequest,
    join_key,
    validate_key,
)
from zarrcore.storage.local import LocalStore
from zarrcore.storage.memory import MemoryStore
from zarrcore.storage.registry import check_url, open_store, register, registered_schemes, unregister

__all__ = [
    "ByteRange",
    "LocalStore",
    "MemoryStore",
    "OffsetRequest",
    "RangeRequest",
    "Store",
    "SuffixRequest",
    "check_url",
    "join_key",
    "open_store",
    "register",
    "registered_schemes",
    "unregister",
    "validate_key",
]
