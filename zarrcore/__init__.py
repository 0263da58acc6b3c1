"""zarrcore: a small, complete Zarr (v2 and v3) library for local disk and object storage.

>>> import zarrcore, numpy as np
>>> a = zarrcore.create("memory://doc", shape=(4, 4), chunks=(2, 2), dtype="float32", overwrite=True)
>>> a[:] = np.arange(16, dtype="float32").reshape(4, 4)
>>> float(zarrcore.open("memory://doc")[3, 3])
15.0
"""

from zarrcore import claims, datasets, errors, retry, spec, storage, streams, telemetry
from zarrcore.api import consolidate_metadata, create, create_group, open, open_array, open_group
from zarrcore.array import Array
from zarrcore.checkpoint import Checkpoint
from zarrcore.claims import Claim, ClaimInfo, claim_writer, current_writer
from zarrcore.datasets import Dataset, create_dataset, open_dataset
from zarrcore.group import Group
from zarrcore.spec import build_array_metadata
from zarrcore.storage import open_store
from zarrcore.streams import ReadSummary, WriteSummary

__version__ = "0.2.0"

__all__ = [
    "Array",
    "build_array_metadata",
    "Checkpoint",
    "Claim",
    "ClaimInfo",
    "claim_writer",
    "claims",
    "Group",
    "consolidate_metadata",
    "create",
    "create_dataset",
    "create_group",
    "current_writer",
    "Dataset",
    "datasets",
    "errors",
    "open",
    "open_array",
    "open_dataset",
    "open_group",
    "open_store",
    "ReadSummary",
    "retry",
    "spec",
    "storage",
    "streams",
    "telemetry",
    "WriteSummary",
]
