"""Parquet and Arrow IPC tables: numeric columns as a matrix, or each column as an array of its own."""

from __future__ import annotations

import threading
from typing import Any, Literal

import numpy as np
from pydantic import Field

from flows.sources.base import FileSourceModel, Region, SourceError, SourceModel, SourceReader

__all__ = ["ParquetSource", "TableReader"]


class TableReader(SourceReader):
    """Numeric columns of a Parquet or Arrow IPC file, as a 2-D ``(rows, columns)`` or a 1-D array; a
    1-D array may also hold a string column (variable-length strings, nulls read as ``''``).

    Parquet is read by row group: a region reads only the row groups it overlaps, and each thread keeps
    its last decoded row group, so memory stays bounded by row-group size times concurrency.
    """

    def __init__(self, path: str, columns: tuple[str, ...] | None, matrix: bool, *, listing: bool = False) -> None:
        import pyarrow as pa
        import pyarrow.ipc as ipc
        import pyarrow.parquet as pq

        self._path = path
        self._local = threading.local()
        self._parquet = not path.endswith((".arrow", ".feather", ".ipc"))
        try:
            if self._parquet:
                meta = pq.ParquetFile(path)
                schema = meta.schema_arrow
                self._group_rows = [meta.metadata.row_group(i).num_rows for i in range(meta.num_row_groups)]
                self._table = None
            else:
                self._table = ipc.open_file(pa.memory_map(path, "r")).read_all()
                schema = self._table.schema
                self._group_rows = [self._table.num_rows]
        except (OSError, pa.ArrowInvalid) as exc:
            raise SourceError(f"{path}: not a readable Parquet/Arrow file: {exc}") from None
        numeric = [f.name for f in schema if pa.types.is_integer(f.type) or pa.types.is_floating(f.type)
                   or pa.types.is_boolean(f.type)]  # fmt: skip
        strings = [f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
        with_strings = listing or not matrix  # string columns land only as arrays of their own
        if columns is None:
            columns = tuple(f.name for f in schema if f.name in numeric or (with_strings and f.name in strings))
            if not columns:
                raise SourceError(f"{path}: the table has no numeric{' or string' if with_strings else ''} columns")
        for c in columns:
            if c not in schema.names:
                raise SourceError(f"{path}: no column named {c!r}; columns: {', '.join(schema.names)}")
            if c in strings and not with_strings:
                raise SourceError(f"{path}: column {c!r} holds strings: land it with layout 'columns' (one array each)")
            if c not in numeric and c not in strings:
                raise SourceError(
                    f"{path}: column {c!r} has type {schema.field(c).type}, which is neither numeric nor a string"
                )
        self.columns = list(columns)
        if not matrix and len(self.columns) != 1:
            raise SourceError(f"{path}: a 1-D column source needs exactly one column, got {self.columns}")
        self._matrix = matrix
        self._starts = np.concatenate([[0], np.cumsum(self._group_rows)]).astype(np.int64)
        rows = int(self._starts[-1])
        self.dtype = np.result_type(*[schema.field(c).type.to_pandas_dtype() for c in self.columns])
        self.shape = (rows, len(self.columns)) if matrix else (rows,)
        self.dimension_names = ("row", "column") if matrix else ("row",)

    def _group(self, i: int) -> np.ndarray:
        cached = getattr(self._local, "group", None)
        if cached is not None and cached[0] == i:
            return cached[1]
        if self._parquet:
            import pyarrow.parquet as pq

            table = pq.ParquetFile(self._path).read_row_group(i, columns=self.columns)
        else:
            table = self._table.select(self.columns)  # type: ignore[union-attr]
        cols = [self._values(table.column(c)) for c in self.columns]
        block = np.stack(cols, axis=1)
        self._local.group = (i, block)
        return block

    def _values(self, column: Any) -> np.ndarray:
        if self.dtype.kind == "O":  # strings: nulls become '' (the fill value), the rest stay str
            return np.array(["" if v is None else v for v in column.to_pylist()], dtype=object)
        return column.to_numpy(zero_copy_only=False).astype(self.dtype, copy=False)  # type: ignore[no-any-return]

    def read(self, region: Region) -> np.ndarray:
        rows = region[0]
        col_sel = region[1] if self._matrix else slice(0, 1)
        out = np.empty((rows.stop - rows.start, col_sel.stop - col_sel.start), dtype=self.dtype)
        first = int(np.searchsorted(self._starts, rows.start, side="right")) - 1
        for g in range(max(first, 0), len(self._group_rows)):
            g0, g1 = int(self._starts[g]), int(self._starts[g + 1])
            if g0 >= rows.stop:
                break
            lo, hi = max(rows.start, g0), min(rows.stop, g1)
            if lo < hi:
                out[lo - rows.start : hi - rows.start] = self._group(g)[lo - g0 : hi - g0, col_sel]
        return out if self._matrix else out[:, 0]

    def describe(self) -> str:
        return f"{self._path} columns={self.columns} shape={self.shape} dtype={self.dtype}"


class ParquetSource(FileSourceModel):
    """Numeric columns of a Parquet (or Arrow IPC: ``.arrow``/``.feather``) file; with layout
    ``columns``, string columns too (each lands as an array of variable-length strings)."""

    kind: Literal["parquet"] = Field("parquet", description="Source type: a Parquet or Arrow IPC table.")
    path: str = Field(description="Path of the .parquet (or .arrow/.feather) file, readable by every worker.")
    columns: tuple[str, ...] | None = Field(
        None,
        description="Columns to land, in order; default: every integer, float and boolean column (and, with "
        "layout 'columns', every string column).",
    )
    layout: Literal["matrix", "columns"] = Field(
        "matrix",
        description="'matrix': one 2-D array (rows x columns) of a common dtype; "
        "'columns': a group holding one 1-D array per column, named after it.",
    )

    def targets(self, array: str) -> list[tuple[str, SourceModel]]:
        if self.layout == "matrix":
            return [(array, self)]
        columns = self.columns or self.open().columns  # type: ignore[attr-defined]
        return [(f"{array}/{c}" if array else c, self.model_copy(update={"columns": (c,)})) for c in columns]

    def _reader(self) -> SourceReader:
        if self.layout == "columns" and (self.columns is None or len(self.columns) != 1):
            # the reader of the split table: only used to list the columns
            return TableReader(self.path, self.columns, matrix=True, listing=True)
        return TableReader(self.path, self.columns, matrix=self.layout == "matrix")
