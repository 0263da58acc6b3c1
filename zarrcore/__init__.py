"""zarrcore: a small, complete Zarr (v2 and v3) library for local disk and object storage."""

from zarrcore import errors, retry, storage, telemetry
from zarrcore.storage import open_store

__version__ = "0.1.0"

__all__ = ["errors", "open_store", "retry", "storage", "telemetry"]
