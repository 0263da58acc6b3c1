"""Flow sources and parameters: every source reads any region on its own, fingerprints change exactly
with the data, and bad parameters are refused with a message naming the problem (no Prefect needed)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest
from pydantic import TypeAdapter, ValidationError

import zarrcore
from flows.params import ArrayLayout, Execution
from flows.sources import (
    NpySource,
    NpzSource,
    ParquetSource,
    SourceError,
    SourceSpec,
    SyntheticSource,
    ZarrSource,
)
from flows.stores import StoreRef
from flows.targets import ChunkBatch, TargetRef, auto_chunks, plan_batches, target_metadata
from zarrcore.errors import MetadataError

SPEC = TypeAdapter(SourceSpec)
REGION = (slice(3, 17), slice(5, 9))


@pytest.fixture
def data() -> np.ndarray:
    return np.random.default_rng(1).standard_normal((40, 12)).astype("float32")


def test_npy_is_memory_mapped_and_reads_regions(tmp_path: Path, data: np.ndarray) -> None:
    np.save(tmp_path / "a.npy", data)
    reader = SPEC.validate_python({"kind": "npy", "path": str(tmp_path / "a.npy")}).open()
    assert isinstance(reader._data, np.memmap)  # type: ignore[attr-defined]
    assert (reader.shape, reader.dtype) == ((40, 12), np.dtype("float32"))
    np.testing.assert_array_equal(reader.read(REGION), data[REGION])


def test_npz_stored_members_are_memory_mapped_compressed_ones_decompressed(tmp_path: Path, data: np.ndarray) -> None:
    np.savez(tmp_path / "s.npz", x=data, y=data.T.copy())
    np.savez_compressed(tmp_path / "c.npz", x=data)
    stored = NpzSource(path=str(tmp_path / "s.npz"), key="y").open()
    assert isinstance(stored._data, np.memmap)  # type: ignore[attr-defined]
    np.testing.assert_array_equal(stored.read((slice(0, 12), slice(2, 30))), data.T[:, 2:30])
    compressed = NpzSource(path=str(tmp_path / "c.npz"), key="x").open()
    np.testing.assert_array_equal(compressed.read(REGION), data[REGION])
    with pytest.raises(SourceError, match=r"no array named 'z'.*holds: x, y"):
        NpzSource(path=str(tmp_path / "s.npz"), key="z").open()


def test_parquet_matrix_reads_across_row_groups(tmp_path: Path) -> None:
    names = [str(i) for i in range(50)]
    table = pa.table({"t": np.arange(50, dtype="int32"), "v": np.linspace(0, 1, 50), "name": names})
    pq.write_table(table, tmp_path / "t.parquet", row_group_size=7)
    reader = ParquetSource(path=str(tmp_path / "t.parquet")).open()
    assert reader.shape == (50, 2) and reader.dtype == np.dtype("float64")  # the numeric columns, common dtype
    expected = np.stack([np.arange(50), np.linspace(0, 1, 50)], axis=1)
    np.testing.assert_array_equal(reader.read((slice(5, 23), slice(0, 2))), expected[5:23])
    np.testing.assert_array_equal(reader.read((slice(49, 50), slice(1, 2))), expected[49:, 1:])
    with pytest.raises(SourceError, match="column 'name' holds strings: land it with layout 'columns'"):
        ParquetSource(path=str(tmp_path / "t.parquet"), columns=("name",)).open()


def test_parquet_string_columns_land_one_array_each(tmp_path: Path) -> None:
    table = pa.table({"n": np.arange(9), "city": ["Bern", None, "Zürich", "", "東京", "x", "y", None, "z"],
                      "when": pa.array(np.arange(9), pa.timestamp("s"))})  # fmt: skip
    pq.write_table(table, tmp_path / "t.parquet", row_group_size=4)
    targets = ParquetSource(path=str(tmp_path / "t.parquet"), layout="columns").targets("table")
    assert [path for path, _ in targets] == ["table/n", "table/city"]  # timestamps are neither: not by default
    city = targets[1][1].open()
    assert (city.shape, city.dtype) == ((9,), np.dtype(object))
    assert list(city.read((slice(0, 9),))) == ["Bern", "", "Zürich", "", "東京", "x", "y", "", "z"]  # nulls: ''
    with pytest.raises(SourceError, match=r"column 'when' has type timestamp.*neither numeric nor a string"):
        ParquetSource(path=str(tmp_path / "t.parquet"), columns=("when",), layout="columns").open()


def test_parquet_columns_layout_gives_one_array_per_column(tmp_path: Path) -> None:
    pq.write_table(pa.table({"a": np.arange(10), "b": np.arange(10) * 0.5}), tmp_path / "t.parquet", row_group_size=4)
    targets = ParquetSource(path=str(tmp_path / "t.parquet"), layout="columns").targets("table")
    assert [path for path, _ in targets] == ["table/a", "table/b"]
    a, b = (spec.open() for _, spec in targets)
    assert (a.shape, a.dtype, b.dtype) == ((10,), np.dtype("int64"), np.dtype("float64"))
    np.testing.assert_array_equal(b.read((slice(3, 9),)), np.arange(3, 9) * 0.5)


def test_arrow_ipc_file(tmp_path: Path) -> None:
    table = pa.table({"x": np.arange(20, dtype="float32"), "y": -np.arange(20, dtype="float32")})
    with ipc.new_file(str(tmp_path / "t.arrow"), table.schema) as writer:
        writer.write_table(table)
    reader = ParquetSource(path=str(tmp_path / "t.arrow")).open()
    np.testing.assert_array_equal(reader.read((slice(2, 5), slice(0, 2))), [[2, -2], [3, -3], [4, -4]])


def test_zarr_source_keeps_its_layout(tmp_path: Path, data: np.ndarray) -> None:
    src = zarrcore.create(str(tmp_path / "src.zarr"), shape=data.shape, chunks=(8, 5), dtype="float32",
                          fill_value=np.nan, zarr_format=2, compressor={"id": "zlib", "level": 1})  # fmt: skip
    src[:] = data
    reader = ZarrSource(url=str(tmp_path / "src.zarr")).open()
    assert reader.chunks == (8, 5)
    np.testing.assert_array_equal(reader.read(REGION), data[REGION])
    meta = target_metadata(ArrayLayout(), reader)
    assert (meta.zarr_format, meta.chunks, meta.compressor) == (2, (8, 5), {"id": "zlib", "level": 1})
    assert np.isnan(meta.fill_value)
    rechunked = target_metadata(ArrayLayout(chunks=(20, 12), zarr_format=3), reader)
    assert rechunked.chunks == (20, 12) and rechunked.codecs[-1]["name"] == "zstd"


def test_synthetic_chunks_are_computable_independently() -> None:
    spec = SyntheticSource(shape=(30, 20, 4), dtype="float64", seed=3)
    whole = spec.open().read((slice(0, 30), slice(0, 20), slice(0, 4)))
    again = SyntheticSource(shape=(30, 20, 4), dtype="float64", seed=3).open()  # as another worker would
    part = again.read((slice(7, 19), slice(3, 4), slice(1, 3)))
    np.testing.assert_array_equal(part, whole[7:19, 3:4, 1:3])
    other_seed = SyntheticSource(shape=(30, 20, 4), dtype="float64", seed=4).open()
    assert not np.array_equal(other_seed.read((slice(0, 30), slice(0, 20), slice(0, 4))), whole)
    for dtype in ("int16", "uint8", "bool", "float32"):
        for pattern in ("smooth", "noise"):
            reader = SyntheticSource(shape=(16, 16), dtype=dtype, pattern=pattern).open()
            block = reader.read((slice(0, 16), slice(0, 16)))
            assert block.dtype == np.dtype(dtype) and block.shape == (16, 16)
            np.testing.assert_array_equal(reader.read((slice(4, 9), slice(10, 16))), block[4:9, 10:16])


def test_fingerprints_change_exactly_with_the_data(tmp_path: Path, data: np.ndarray) -> None:
    np.save(tmp_path / "a.npy", data)
    regions = [(slice(r, r + 10), slice(0, 12)) for r in range(0, 40, 10)]
    before = [NpySource(path=str(tmp_path / "a.npy")).open().fingerprint(r) for r in regions]
    changed = data.copy()
    changed[25, 3] += 1  # only the third region
    np.save(tmp_path / "a.npy", changed)
    after = [NpySource(path=str(tmp_path / "a.npy")).open().fingerprint(r) for r in regions]
    assert [b == a for b, a in zip(before, after, strict=True)] == [True, True, False, True]
    synth = SyntheticSource(shape=(40, 12)).open()
    assert synth.fingerprint(regions[0]) == SyntheticSource(shape=(40, 12)).open().fingerprint(regions[0])
    assert synth.fingerprint(regions[0]) != synth.fingerprint(regions[1])
    assert synth.fingerprint(regions[0]) != SyntheticSource(shape=(40, 12), seed=9).open().fingerprint(regions[0])


def test_batches_cover_the_grid_once_and_respect_the_byte_target() -> None:
    ref = TargetRef(store=StoreRef(url="memory://x"), path="a", shape=(100, 70), chunks=(10, 10), fingerprint="f",
                    incarnation="i")  # fmt: skip
    batches = plan_batches(ref, 4, Execution(batch_bytes=10 * 10 * 4 * 8, max_chunks_per_batch=100))
    assert [b.size for b in batches] == [8] * 8 + [6]
    covered = [i for b in batches for i in b.indices(ref.grid_shape)]
    assert covered == list(np.ndindex(*ref.grid_shape))
    assert len(plan_batches(ref, 4, Execution(max_chunks_per_batch=5))) == 14
    assert ChunkBatch(number=0, start=3, stop=5).size == 2
    assert auto_chunks((10_000, 10_000), 4, 4 * 1024 * 1024) == (625, 1250)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"kind": "hdf5", "path": "x"}, "does not match any of the expected tags"),
        ({"kind": "npy"}, "path"),
        ({"kind": "synthetic", "shape": [4, -1]}, "greater than or equal to 0"),
        ({"kind": "synthetic", "shape": [4], "dtype": "U8"}, "bool, integer and float"),
        ({"kind": "zarr", "url": "ftp://host/x"}, "unknown URL scheme 'ftp'"),
        ({"kind": "zarr", "url": "s3://user:pw@bucket/x"}, "must not carry credentials"),
        ({"kind": "zarr", "url": "s3://b/x", "storage_options": {"secret_access_key": "k"}}, "look like credentials"),
        ({"kind": "parquet", "path": "t.parquet", "layout": "rows"}, "'matrix' or 'columns'"),
    ],
)
def test_bad_source_parameters_are_refused(spec: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        SPEC.validate_python(spec)


@pytest.mark.parametrize(
    ("model", "fields", "message"),
    [
        (Execution, {"max_workers": 0}, "greater than or equal to 1"),
        (Execution, {"task_runner": "processes"}, "'threads' or 'dask'"),
        (Execution, {"dask_address": "tcp://127.0.0.1:8786"}, "task_runner is not 'dask'"),
        (Execution, {"batch_bytes": -1}, "greater than or equal to 1"),
        (ArrayLayout, {"chunks": [0, 4]}, "greater than or equal to 1"),
        (ArrayLayout, {"dtype": "float7"}, "unknown dtype"),
        (ArrayLayout, {"compression": "brotli"}, "zstd"),
        (ArrayLayout, {"chunk": [4]}, "Extra inputs are not permitted"),
    ],
)
def test_bad_run_parameters_are_refused(model: type, fields: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        model.model_validate(fields)


def test_layouts_that_do_not_fit_the_source_fail_before_any_write(tmp_path: Path) -> None:
    reader = SyntheticSource(shape=(10, 10)).open()
    with pytest.raises(MetadataError, match=r"chunks: \[5\] has rank 1 but the source has shape \[10, 10\]"):
        target_metadata(ArrayLayout(chunks=(5,)), reader)
    with pytest.raises(MetadataError, match=r"dimension_names: \['y'\] has 1 names but the source has shape"):
        target_metadata(ArrayLayout(dimension_names=("y",)), reader)
    with pytest.raises(MetadataError):
        target_metadata(ArrayLayout(fill_value="not a number"), reader)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_every_target_has_dimension_names_as_xarray_reads_them(zarr_format: int) -> None:
    reader = SyntheticSource(shape=(10, 10)).open()
    named = target_metadata(ArrayLayout(zarr_format=zarr_format, dimension_names=("y", "x")), reader)
    unnamed = target_metadata(ArrayLayout(zarr_format=zarr_format), reader)
    if zarr_format == 3:
        assert named.dimension_names == ("y", "x") and unnamed.dimension_names == ("dim_0", "dim_1")
    else:
        assert named.attributes["_ARRAY_DIMENSIONS"] == ["y", "x"]
        assert unnamed.attributes["_ARRAY_DIMENSIONS"] == ["dim_0", "dim_1"]


def test_missing_source_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"source file '.*nope\.npy' cannot be opened: No such file"):
        NpySource(path=str(tmp_path / "nope.npy")).open()
    (tmp_path / "bad.npy").write_bytes(b"not numpy")
    with pytest.raises(SourceError, match=r"not a readable \.npy file"):
        NpySource(path=str(tmp_path / "bad.npy")).open()
    assert json.loads(SyntheticSource(shape=(2,)).model_dump_json())["kind"] == "synthetic"
