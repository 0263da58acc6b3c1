"""The flows' bookkeeping folder inside each array: ``<array>/.zarrcore/``.

It holds the array's incarnation id, the completion manifest and (by default) the ledger of finished
batches. Its keys are never chunk keys in either Zarr format, so zarr-python and other readers ignore
them. Every flows module names these keys through this one module.
"""

from __future__ import annotations

from zarrcore import claims
from zarrcore.storage import join_key

__all__ = ["BOOKKEEPING_DIR", "bookkeeping_key", "is_bookkeeping", "INCARNATION", "MANIFEST", "RESULTS"]

#: The folder, inside the array, that holds the bookkeeping (zarrcore keeps its writer claims there too).
BOOKKEEPING_DIR = claims.BOOKKEEPING_DIR
#: The array's incarnation id (created once with the array).
INCARNATION = "incarnation.json"
#: The completion manifest.
MANIFEST = "manifest.json"
#: The prefix of the ledger's records when kept inside the array.
RESULTS = "results"


def bookkeeping_key(array_path: str, *parts: str) -> str:
    """The store key of ``parts`` inside the bookkeeping folder of the array at ``array_path``."""
    return join_key(array_path, BOOKKEEPING_DIR, *parts)


def is_bookkeeping(relative_key: str) -> bool:
    """Whether a key relative to the array's own folder is bookkeeping (not Zarr data or metadata)."""
    return relative_key == BOOKKEEPING_DIR or relative_key.startswith(BOOKKEEPING_DIR + "/")
