"""Slicing's pools moved to :mod:`zarrcore.pool`; this name stays only for imports not yet updated."""
from zarrcore.pool import run_all as run_all
