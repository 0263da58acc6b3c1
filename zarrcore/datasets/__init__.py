"""Datasets: a Zarr group that xarray opens, grown by appends of pieces from source files.

Built so far: the input model (:mod:`.model`), the layout in xarray's conventions (:mod:`.layout`)
and the commit records and ledger (:mod:`.ledger`).
"""

from zarrcore.datasets.layout import Layout, build_layout, chunk_sizes, dims_of, read_layout
from zarrcore.datasets.ledger import BOOKKEEPING_DIR, CommitRecord, Landed, Ledger, Placement, read_ledger
from zarrcore.datasets.model import Piece, SourceId, Variable

__all__ = [
    "BOOKKEEPING_DIR",
    "CommitRecord",
    "Landed",
    "Layout",
    "Ledger",
    "Piece",
    "Placement",
    "SourceId",
    "Variable",
    "build_layout",
    "chunk_sizes",
    "dims_of",
    "read_layout",
    "read_ledger",
]
