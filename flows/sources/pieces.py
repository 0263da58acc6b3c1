"""NetCDF4/HDF5 files and Zarr datasets written by xarray as dataset pieces (:class:`zarrcore.datasets.Piece`):
what each source contributes to a dataset, its values as stored (packed integers stay packed, times stay
numbers in their units). A URL naming a Zarr group is read with zarrcore
(:mod:`flows.sources.zarr_dataset`), any other as a NetCDF4/HDF5 file.

Planning reads only a file's coordinates, static variables and attributes. A process keeps only a few
files open (:data:`OPEN_FILES`), so a run over thousands of files never holds them all open; the write
tasks read through the same few open files, reopening the ones that were closed (:func:`writing_piece`).
"""

from __future__ import annotations

import collections
import json
import threading
import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np

from flows.sources.base import SourceError
from flows.sources.listing import FileIdentity, file_identity, locate
from flows.sources.netcdf import NetcdfSource, open_netcdf
from flows.sources.zarr_dataset import ZarrDatasetSource, is_zarr_store, open_zarr_dataset, zarr_identity
from zarrcore.datasets import Landed, Piece, SourceId, Variable

__all__ = ["planning_piece", "writing_piece", "unchanged", "selected", "close_open_files", "NETCDF_SUFFIXES"]

NETCDF_SUFFIXES = (".nc", ".nc4", ".netcdf", ".h5", ".hdf5", ".he5")


class _ReadInTasks:
    """The shape and dtype of a variable read by the write tasks, not while planning."""

    def __init__(self, shape: tuple[int, ...], dtype: np.dtype, where: str) -> None:
        self.shape, self.dtype, self._where = shape, dtype, where

    def __getitem__(self, key: Any) -> np.ndarray:
        raise RuntimeError(f"{self._where} is read by the write tasks, not while planning")


class _Held:
    """A variable's lazy data that keeps its file open (h5netcdf closes a file nothing refers to)."""

    def __init__(self, data: Any, source: Source) -> None:
        self._data, self._source = data, source
        self.shape, self.dtype = data.shape, data.dtype

    def __getitem__(self, key: Any) -> np.ndarray:
        return self._data[key]  # type: ignore[no-any-return]


Source = NetcdfSource | ZarrDatasetSource


def _is_zarr(url: str, storage_options: dict[str, Any] | None) -> bool:
    """Whether ``url`` names a Zarr group (a NetCDF file's name says so without a request)."""
    return not url.lower().endswith(NETCDF_SUFFIXES) and is_zarr_store(url, storage_options)


def open_source(url: str, storage_options: dict[str, Any] | None) -> Source:
    """The source at ``url``: a Zarr dataset when it names a Zarr group, else a NetCDF4/HDF5 file."""
    if _is_zarr(url, storage_options):
        return open_zarr_dataset(url, storage_options)
    return open_netcdf(url, storage_options)


def selected(source: Source, variables: Sequence[str] | None) -> list[str]:
    """The variables to land: ``variables`` (all by default) and the coordinates of their dims."""
    names = list(source.variables) if not variables else list(variables)
    unknown = sorted(set(names) - set(source.variables))
    if unknown:
        raise SourceError(f"{source.url}: no variable {unknown}; it has {sorted(source.variables)}")
    dims = {d for n in names for d in source.variables[n].dims}
    return sorted(set(names) | {d for d in dims if d in source.variables and source.variables[d].dims == (d,)})


def _piece(source: Source, names: list[str], source_id: SourceId | None, eager: set[str] | None) -> Piece:
    out = {}
    for name in names:
        var = source.variables[name]
        if eager is None:
            data: Any = _Held(var.data, source)
        elif name in eager:
            data = np.asarray(var.data[...])
        else:
            data = _ReadInTasks(var.shape, var.dtype, f"{source.url}:{name}")
        out[name] = Variable(var.dims, data, dict(var.attrs))
    return Piece(out, dict(source.attrs), source_id)


def planning_piece(url: str, storage_options: dict[str, Any] | None, variables: Sequence[str] | None,
                   dim: str) -> Piece:  # fmt: skip
    """The piece of the file at ``url`` for planning: its identity (size, version and the SHA-256 of
    the version read), coordinates and static variables read, the rest described only. The file stays
    in the process's few open files (:func:`writing_piece`), so write tasks in this process read the
    very version planned without opening it again."""
    source = _open_source(url, json.dumps(storage_options or {}, sort_keys=True))
    names = selected(source, variables)
    if dim not in names:
        raise SourceError(f"{url}: no coordinate variable for dimension {dim!r}")
    eager = {n for n in names if dim not in source.variables[n].dims or source.variables[n].dims == (dim,)}
    ident = source.identity
    return _piece(source, names, SourceId(ident.url, ident.size, _version(ident), ident.sha256), eager)


def unchanged(url: str, storage_options: dict[str, Any] | None, landed: Landed | None) -> bool:
    """Whether ``url`` landed and its size and version are still those recorded (no read of its bytes)."""
    if landed is None or landed.source.size is None or landed.source.version is None:
        return False
    if _is_zarr(url, storage_options):
        here = locate(url, storage_options)
        ident = zarr_identity(here.store.open(), here.key.rstrip("/"), here.url, with_hash=False)
    else:
        ident = file_identity(url, storage_options, with_hash=False)
    return (ident.size, _version(ident)) == (landed.source.size, landed.source.version)


def _version(ident: FileIdentity) -> str | None:
    """The store's version of the file (ETag, generation), else its modification time."""
    return ident.version if ident.version is not None or ident.mtime_ns is None else str(ident.mtime_ns)


def writing_piece(url: str, storage_options: dict[str, Any] | None, variables: Sequence[str]) -> Piece:
    """The piece of ``url`` with lazily read variables, for the write tasks: the file is opened once
    per process (at most :data:`OPEN_FILES` at a time)."""
    return _piece(_open_source(url, json.dumps(storage_options or {}, sort_keys=True)), list(variables), None, None)


#: Files a process keeps open for planning and the write tasks (each holds a block cache of at most 4 MiB).
OPEN_FILES = 16

_opening = threading.Lock()
#: The files open in this process, least recently used first; one dropped from here closes once
#: nothing refers to it any more.
_open: collections.OrderedDict[tuple[str, str], Source] = collections.OrderedDict()


def _open_source(url: str, options: str) -> Source:
    with _opening:  # one open per file and process, even when many threads ask at once
        source = _open.get((url, options))
        if source is None:
            source = _open[(url, options)] = open_source(url, json.loads(options))
            _opened.add(source)
            while len(_open) > OPEN_FILES:
                _open.popitem(last=False)
        _open.move_to_end((url, options))
        return source


#: Every source still alive (evicted ones close when nothing refers to them any more).
_opened: weakref.WeakSet[Source] = weakref.WeakSet()


def close_open_files() -> None:
    """Close the files the write tasks opened in this process (a run calls it when its writes are
    done; at exit :func:`flows.sources.netcdf.close_all` closes whatever is left). The next task opens
    them again."""
    with _opening:
        _open.clear()
        for source in list(_opened):
            _opened.discard(source)
            try:
                source.close()
            except Exception:  # a file already gone: nothing left to release
                pass
