"""Datasets: a Zarr group that xarray opens, grown by appends of pieces from source files.

The input model is in :mod:`.model`, the layout in xarray's conventions in :mod:`.layout`, the
commit records and ledger in :mod:`.ledger`, planning in :mod:`.plan`, the transaction (units and
the commit) in :mod:`.transaction` and the :class:`Dataset` itself in :mod:`.dataset`. See
docs/datasets.md.
"""

from zarrcore.datasets.dataset import Dataset, create_dataset, open_dataset
from zarrcore.datasets.layout import Layout, build_layout, chunk_sizes, dims_of, read_layout
from zarrcore.datasets.ledger import BOOKKEEPING_DIR, CommitRecord, Landed, Ledger, Placement, read_ledger
from zarrcore.datasets.model import Piece, SourceId, Variable
from zarrcore.datasets.plan import Unit
from zarrcore.datasets.transaction import Transaction

__all__ = [
    "BOOKKEEPING_DIR",
    "CommitRecord",
    "Dataset",
    "Landed",
    "Layout",
    "Ledger",
    "Piece",
    "Placement",
    "SourceId",
    "Transaction",
    "Unit",
    "Variable",
    "build_layout",
    "chunk_sizes",
    "create_dataset",
    "dims_of",
    "open_dataset",
    "read_layout",
    "read_ledger",
]
